! lensdiff_mpi_f08: posterior chains split across MPI ranks from Fortran 2008
! (mpi_f08); the same program as lensdiff_mpi.c, writing the same files.
!
!   mpirun -n 4 ./lensdiff_mpi_f08 OUTDIR [split|joint|joint-model FILE|model FILE]
!
! Every rank builds the same problem (48x48 pixels of 1', default prior,
! uniform noise 0.05, a Gaussian field simulated with seed 7) and calls the
! collective lensdiff_sampler_run_mpi with its communicator as a Fortran
! handle (comm%MPI_VAL with mpi_f08; plain comm with `use mpi`). Rank 0 writes
! OUTDIR/mean.f32, std.f32 and samples.f32 (raw little-endian float32) and
! work.txt (NFE per chain and the inner CG iterations of all ranks). With
! "split", MPI_COMM_WORLD is split into two halves (even and odd ranks) that
! sample independently, and rank 0 of each half writes
! OUTDIR/half<colour>_mean.f32 etc.
!
! With "joint" the chains sample (omega_c, sigma8) jointly with the map under
! the exact Gaussian joint prior of the default cosmology (priors N(0.3, 0.05^2)
! and N(0.8, 0.05^2)), EDM with 16 levels; with "joint-model FILE", under the
! learned joint prior of FILE, loaded by every rank from the file. Rank 0 also
! writes OUTDIR/theta.f64 (float64, [chains][2] in C order). With "model
! FILE" the map sampler runs under the learned prior of FILE (a `lensdiff
! train` model of 1' pixels), loaded by every rank from the file.
!
! The host program owns MPI: lensdiff never initialises or finalises it.
program lensdiff_mpi_f08
    use, intrinsic :: iso_c_binding, only: c_int, c_int32_t, c_int64_t, c_size_t, c_float, &
        c_double, c_ptr, c_null_ptr, c_null_char
    use, intrinsic :: iso_fortran_env, only: error_unit, output_unit
    use mpi_f08
    use lensdiff
    implicit none

    integer, parameter :: N = 48

    type(MPI_Comm) :: comm
    type(c_ptr) :: p = c_null_ptr, s = c_null_ptr
    type(lensdiff_sampler_config) :: cfg
    character(len=:), allocatable :: outdir, prefix
    character(len=16) :: arg
    character(len=:), allocatable :: model, map_model
    integer :: provided, world_rank, rank, nranks, colour, arglen
    logical :: split, joint
    integer(c_size_t) :: npix, chains, np
    type(lensdiff_cosmology) :: cosmo
    real(c_double), allocatable :: theta(:)
    integer(c_int64_t) :: nfe, inner
    real(c_double) :: seconds
    real(c_float), allocatable :: kappa(:), mean(:), sd(:), samples(:)

    call MPI_Init_thread(MPI_THREAD_FUNNELED, provided)
    if (command_argument_count() < 1) then
        write (error_unit, '(a)') 'usage: lensdiff_mpi_f08 OUTDIR [split|joint|joint-model FILE|model FILE]'
        call MPI_Abort(MPI_COMM_WORLD, 2)
    end if
    call get_command_argument(1, length=arglen)
    allocate (character(len=arglen) :: outdir)
    call get_command_argument(1, outdir)
    split = .false.
    joint = .false.
    model = ''
    map_model = ''
    if (command_argument_count() > 1) then
        call get_command_argument(2, arg, length=arglen)
        split = arglen == 5 .and. arg(1:5) == 'split'
        joint = arglen == 5 .and. arg(1:5) == 'joint'
        if (arglen == 11 .and. arg(1:11) == 'joint-model') then
            if (command_argument_count() < 3) then
                write (error_unit, '(a)') 'joint-model needs a FILE'
                call MPI_Abort(MPI_COMM_WORLD, 2)
            end if
            call get_command_argument(3, length=arglen)
            deallocate (model)
            allocate (character(len=arglen) :: model)
            call get_command_argument(3, model)
        end if
        if (arglen == 5 .and. arg(1:5) == 'model') then
            if (command_argument_count() < 3) then
                write (error_unit, '(a)') 'model needs a FILE'
                call MPI_Abort(MPI_COMM_WORLD, 2)
            end if
            call get_command_argument(3, length=arglen)
            deallocate (map_model)
            allocate (character(len=arglen) :: map_model)
            call get_command_argument(3, map_model)
        end if
    end if

    call MPI_Comm_rank(MPI_COMM_WORLD, world_rank)
    comm = MPI_COMM_WORLD
    colour = 0
    if (split) then
        colour = mod(world_rank, 2)
        call MPI_Comm_split(MPI_COMM_WORLD, colour, world_rank, comm)
    end if
    call MPI_Comm_rank(comm, rank)
    call MPI_Comm_size(comm, nranks)

    npix = int(N, c_size_t) * int(N, c_size_t)
    chains = 0
    allocate (kappa(npix), mean(npix), sd(npix))
    call check(lensdiff_problem_create(int(N, c_size_t), int(N, c_size_t), 1.0_c_double, p), 'create')
    call check(lensdiff_problem_set_prior_default(p), 'prior')
    call check(lensdiff_problem_set_noise_uniform(p, 0.05_c_double), 'noise')
    call check(lensdiff_problem_simulate(p, LENSDIFF_FIELD_GAUSSIAN, 0.0_c_double, 0.3_c_double, &
        30.0_c_double, 7_c_int64_t, kappa, npix), 'simulate')
    call check(lensdiff_sampler_config_init(cfg), 'config')
    cfg%chains = 20
    cfg%batch = 4
    cfg%levels = 16
    cfg%seed = 3
    if (joint .or. len(model) > 0) then
        if (joint) then
            call check(lensdiff_cosmology_init(cosmo), 'cosmology')
            call check(lensdiff_problem_set_joint_prior_cosmology(p, cosmo, 'omega_c,sigma8'//c_null_char, &
                [0.3_c_double, 0.8_c_double], [0.05_c_double, 0.05_c_double], 2_c_size_t), 'joint prior')
        else
            call check(lensdiff_problem_load_joint_model(p, model//c_null_char, c_null_ptr), 'joint model')
        end if
        call check(lensdiff_joint_sampler_config_init(cfg), 'joint config')
        cfg%chains = 20
        cfg%batch = 4
        cfg%levels = 16
        cfg%seed = 3
        call check(lensdiff_joint_sampler_create(p, cfg, s), 'joint sampler')
    else
        ! the learned map prior: every rank opens the file
        if (len(map_model) > 0) call check(lensdiff_problem_load_model(p, map_model//c_null_char), 'model')
        call check(lensdiff_sampler_create(p, cfg, s), 'sampler')
    end if
    ! the Fortran handle of an mpi_f08 communicator is its MPI_VAL component
    call check(lensdiff_sampler_run_mpi(s, int(comm%MPI_VAL, c_int32_t), 1_c_int32_t), 'run_mpi')
    call check(lensdiff_sampler_mean(s, mean, npix), 'mean')
    call check(lensdiff_sampler_std(s, sd, npix), 'std')
    call check(lensdiff_sampler_chains(s, chains), 'chains')
    if (rank == 0) then
        prefix = ''
        if (split) then
            write (arg, '(a,i0,a)') 'half', colour, '_'
            prefix = trim(arg)
        end if
        allocate (samples(chains * npix))
        call check(lensdiff_sampler_samples(s, samples, chains * npix), 'samples')
        call write_f32('mean.f32', mean)
        call write_f32('std.f32', sd)
        call write_f32('samples.f32', samples)
        call check(lensdiff_sampler_stats(s, nfe, seconds), 'stats')
        call check(lensdiff_sampler_inner_iterations(s, inner), 'inner_iterations')
        call write_work('work.txt', nfe, inner)
        if (joint .or. len(model) > 0) then
            call check(lensdiff_sampler_params(s, np), 'params')
            allocate (theta(chains * np))
            call check(lensdiff_sampler_theta(s, theta, chains * np), 'theta')
            call write_f64('theta.f64', theta)
            deallocate (theta)
        end if
        if (split) then
            write (output_unit, '(3a,i0,a,i0,a)') 'lensdiff ', lensdiff_version_text(), ': ', nranks, &
                ' rank(s) per half, ', chains, ' chains gathered on rank 0'
        else
            write (output_unit, '(3a,i0,a,i0,a)') 'lensdiff ', lensdiff_version_text(), ': ', nranks, &
                ' rank(s), ', chains, ' chains gathered on rank 0'
        end if
        deallocate (samples)
    end if
    call check(lensdiff_sampler_destroy(s), 'sampler_destroy')
    s = c_null_ptr
    call check(lensdiff_problem_destroy(p), 'problem_destroy')
    p = c_null_ptr
    deallocate (kappa, mean, sd)
    if (split) call MPI_Comm_free(comm)
    call MPI_Finalize()

contains

    !> On failure: the status name and lensdiff_last_error on stderr, then MPI_Abort.
    subroutine check(st, what)
        integer(c_int), intent(in) :: st
        character(len=*), intent(in) :: what
        if (st == LENSDIFF_STATUS_OK) return
        write (error_unit, '(5a)') what, ': ', lensdiff_status_string(st), ': ', &
            lensdiff_error_message()
        call MPI_Abort(MPI_COMM_WORLD, 1)
    end subroutine check

    !> OUTDIR/<prefix><name>: the raw float32 values of x, no header.
    subroutine write_f32(name, x)
        character(len=*), intent(in) :: name
        real(c_float), intent(in) :: x(:)
        character(len=256) :: msg
        integer :: u, ios
        open (newunit=u, file=outdir//'/'//prefix//name, access='stream', form='unformatted', &
            status='replace', action='write', iostat=ios, iomsg=msg)
        if (ios == 0) write (u, iostat=ios, iomsg=msg) x
        if (ios == 0) close (u, iostat=ios, iomsg=msg)
        if (ios /= 0) then
            write (error_unit, '(4a)') 'cannot write ', outdir//'/'//prefix//name, ': ', trim(msg)
            call MPI_Abort(MPI_COMM_WORLD, 1)
        end if
    end subroutine write_f32

    !> OUTDIR/<prefix><name>: the raw float64 values of x, no header.
    subroutine write_f64(name, x)
        character(len=*), intent(in) :: name
        real(c_double), intent(in) :: x(:)
        character(len=256) :: msg
        integer :: u, ios
        open (newunit=u, file=outdir//'/'//prefix//name, access='stream', form='unformatted', &
            status='replace', action='write', iostat=ios, iomsg=msg)
        if (ios == 0) write (u, iostat=ios, iomsg=msg) x
        if (ios == 0) close (u, iostat=ios, iomsg=msg)
        if (ios /= 0) then
            write (error_unit, '(4a)') 'cannot write ', outdir//'/'//prefix//name, ': ', trim(msg)
            call MPI_Abort(MPI_COMM_WORLD, 1)
        end if
    end subroutine write_f64

    !> OUTDIR/<prefix><name>: one line "NFE INNER" (as the C example's "%llu %llu\n").
    subroutine write_work(name, nfe, inner)
        character(len=*), intent(in) :: name
        integer(c_int64_t), intent(in) :: nfe, inner
        character(len=256) :: msg
        integer :: u, ios
        open (newunit=u, file=outdir//'/'//prefix//name, form='formatted', &
            status='replace', action='write', iostat=ios, iomsg=msg)
        if (ios == 0) write (u, '(i0,1x,i0)', iostat=ios, iomsg=msg) nfe, inner
        if (ios == 0) close (u, iostat=ios, iomsg=msg)
        if (ios /= 0) then
            write (error_unit, '(4a)') 'cannot write ', outdir//'/'//prefix//name, ': ', trim(msg)
            call MPI_Abort(MPI_COMM_WORLD, 1)
        end if
    end subroutine write_work

end program lensdiff_mpi_f08
