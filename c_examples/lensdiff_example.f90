! lensdiff Fortran example: the same run as lensdiff_example.c, through the
! iso_c_binding module in lensdiff.f90, writing the same files (raw
! little-endian float32/float64, see README.md) so that the outputs of the two
! can be compared byte for byte.
!
!   lensdiff_example_f OUTDIR [N]
program lensdiff_example
    use, intrinsic :: iso_c_binding, only: c_int, c_int8_t, c_int32_t, c_int64_t, c_size_t, &
        c_float, c_double, c_ptr, c_null_ptr, c_sizeof
    use, intrinsic :: iso_fortran_env, only: error_unit, output_unit
    use lensdiff
    implicit none

    ! the settings (keep in sync with lensdiff_example.c and tests/c_examples.rs)
    integer, parameter :: DEFAULT_N = 48
    real(c_double), parameter :: PIXEL_ARCMIN = 1.0_c_double
    real(c_double), parameter :: NOISE_SIGMA = 0.05_c_double
    integer(c_int64_t), parameter :: SIM_SEED = 7_c_int64_t
    real(c_double), parameter :: SIGMA_E = 0.26_c_double   ! unused: noise set explicitly
    real(c_double), parameter :: N_GAL = 30.0_c_double     ! unused: idem
    real(c_double), parameter :: KS_SMOOTH_PX = 1.0_c_double
    real(c_double), parameter :: WIENER_TOL = 1.0e-6_c_double
    integer(c_int32_t), parameter :: WIENER_MAX_ITER = 1000_c_int32_t
    integer(c_int32_t), parameter :: CHAINS_WANTED = 4_c_int32_t
    integer(c_int32_t), parameter :: BATCH = 2_c_int32_t
    integer(c_int32_t), parameter :: LEVELS = 16_c_int32_t
    integer(c_int64_t), parameter :: SAMPLER_SEED = 3_c_int64_t

    type(c_ptr) :: problem = c_null_ptr, sampler = c_null_ptr
    type(lensdiff_sampler_config) :: cfg
    type(lensdiff_cosmology) :: cosmo
    character(len=:), allocatable :: outdir
    integer :: n, hole, x, y, ios, arglen
    integer(c_size_t) :: npix, chains
    integer(c_int8_t), allocatable :: mask(:, :)
    real(c_float), allocatable :: truth(:, :), wiener(:, :), ks(:, :), mean(:, :), sd(:, :)
    real(c_float), allocatable :: samples(:, :, :)
    real(c_double), allocatable :: chi2(:)
    integer(c_int32_t) :: iterations
    integer(c_int64_t) :: nfe
    real(c_double) :: seconds
    character(len=32) :: arg

    ! --- arguments ----------------------------------------------------------
    if (command_argument_count() < 1 .or. command_argument_count() > 2) then
        write (error_unit, '(a)') 'usage: lensdiff_example_f OUTDIR [N]'
        stop 2
    end if
    call get_command_argument(1, length=arglen)
    allocate (character(len=arglen) :: outdir)
    call get_command_argument(1, outdir)
    n = DEFAULT_N
    if (command_argument_count() == 2) then
        call get_command_argument(2, arg)
        read (arg, *, iostat=ios) n
        if (ios /= 0 .or. verify(trim(arg), '0123456789') /= 0 .or. n < 4 .or. n > 4096) then
            write (error_unit, '(3a)') 'lensdiff_example_f: N must be an integer in [4, 4096], got ''', &
                trim(arg), ''''
            stop 2
        end if
    end if
    if (lensdiff_version() / 10000 /= LENSDIFF_VERSION_MAJOR) then
        write (error_unit, '(3a)') 'lensdiff_example_f: library version ', lensdiff_version_text(), &
            ' does not match the module'
        error stop 1
    end if
    npix = int(n, c_size_t) * int(n, c_size_t)
    hole = n / 4

    ! observed everywhere except an N/4 x N/4 hole in the corner (x, y < N/4,
    ! 0-based); map(x, y) in Fortran is C's map[y][x]
    allocate (mask(n, n), truth(n, n), wiener(n, n), ks(n, n), mean(n, n), sd(n, n))
    do y = 1, n
        do x = 1, n
            if (x <= hole .and. y <= hole) then
                mask(x, y) = 0_c_int8_t
            else
                mask(x, y) = 1_c_int8_t
            end if
        end do
    end do

    ! --- the problem: grid, prior, mask, noise, simulated data -----------------
    call check(lensdiff_problem_create(int(n, c_size_t), int(n, c_size_t), PIXEL_ARCMIN, problem), &
        'lensdiff_problem_create')
    ! (a prior from a cosmology is one call away; as in C, the built-in prior replaces it)
    call check(lensdiff_cosmology_init(cosmo), 'lensdiff_cosmology_init')
    if (cosmo%struct_size /= int(c_sizeof(cosmo), c_int32_t)) &
        error stop 'lensdiff_cosmology: the Fortran type differs from the C struct'
    call check(lensdiff_problem_set_prior_cosmology(problem, cosmo), &
        'lensdiff_problem_set_prior_cosmology')
    call check(lensdiff_problem_set_prior_default(problem), 'lensdiff_problem_set_prior_default')
    call check(lensdiff_problem_set_mask(problem, mask, npix), 'lensdiff_problem_set_mask')
    call check(lensdiff_problem_set_noise_uniform(problem, NOISE_SIGMA), &
        'lensdiff_problem_set_noise_uniform')
    call check(lensdiff_problem_simulate(problem, LENSDIFF_FIELD_GAUSSIAN, 0.0_c_double, SIGMA_E, &
        N_GAL, SIM_SEED, truth, npix), 'lensdiff_problem_simulate')

    ! --- the baselines --------------------------------------------------------
    call check(lensdiff_wiener(problem, WIENER_TOL, WIENER_MAX_ITER, wiener, npix, iterations), &
        'lensdiff_wiener')
    call check(lensdiff_ks(problem, KS_SMOOTH_PX, ks, c_null_ptr, npix), 'lensdiff_ks')

    ! --- posterior sampling ----------------------------------------------------
    call check(lensdiff_sampler_config_init(cfg), 'lensdiff_sampler_config_init')
    if (cfg%struct_size /= int(c_sizeof(cfg), c_int32_t)) then
        write (error_unit, '(a,i0,a,i0)') 'lensdiff_example_f: lensdiff_sampler_config is ', &
            c_sizeof(cfg), ' bytes here but the library says ', cfg%struct_size
        call finish(1)
    end if
    cfg%chains = CHAINS_WANTED
    cfg%batch = BATCH
    cfg%levels = LEVELS
    cfg%seed = SAMPLER_SEED
    call check(lensdiff_sampler_create(problem, cfg, sampler), 'lensdiff_sampler_create')
    call check(lensdiff_sampler_run(sampler), 'lensdiff_sampler_run')
    call check(lensdiff_sampler_chains(sampler, chains), 'lensdiff_sampler_chains')
    allocate (samples(n, n, chains), chi2(chains))
    call check(lensdiff_sampler_mean(sampler, mean, npix), 'lensdiff_sampler_mean')
    call check(lensdiff_sampler_std(sampler, sd, npix), 'lensdiff_sampler_std')
    call check(lensdiff_sampler_samples(sampler, samples, chains * npix), 'lensdiff_sampler_samples')
    call check(lensdiff_sampler_chi2(sampler, chi2, chains), 'lensdiff_sampler_chi2')
    call check(lensdiff_sampler_stats(sampler, nfe, seconds), 'lensdiff_sampler_stats')

    ! --- output -----------------------------------------------------------------
    if (.not. little_endian()) then
        write (error_unit, '(a)') 'lensdiff_example_f: big-endian hosts are not supported'
        call finish(1)
    end if
    call write_f32('truth.f32', truth)
    call write_f32('wiener.f32', wiener)
    call write_f32('ks.f32', ks)
    call write_f32('mean.f32', mean)
    call write_f32('std.f32', sd)
    call write_f32_3d('samples.f32', samples)
    call write_f64('chi2.f64', chi2)

    write (output_unit, '(a,a,a,i0,a,i0,a,i0,a,i0,a,i0,a)') 'lensdiff ', lensdiff_version_text(), &
        ' (Fortran): ', n, 'x', n, ' pixels, hole ', hole, 'x', hole, ', ', chains, ' chains'
    write (output_unit, '(a,i0,a,i0,3a)') '  wiener: ', iterations, &
        ' CG iterations; sampler: NFE ', nfe, ' per chain, ', fixed(seconds, 3), ' s'
    write (output_unit, '(8a)') '  rms(truth) = ', fixed(rms(truth), 6), &
        '  rms(wiener) = ', fixed(rms(wiener), 6), '  rms(mean) = ', fixed(rms(mean), 6), &
        '  chi2(1) = ', fixed(chi2(1), 4)
    write (output_unit, '(3a)') '  wrote ', outdir, '/{truth,wiener,ks,mean,std,samples}.f32, chi2.f64'
    call finish(0)

contains

    !> On failure: report, free everything and exit with status 1.
    subroutine check(st, what)
        integer(c_int), intent(in) :: st
        character(len=*), intent(in) :: what
        if (st == LENSDIFF_STATUS_OK) return
        write (error_unit, '(5a)') 'lensdiff_example_f: ', what, ' failed: ', &
            lensdiff_status_string(st), ': '//lensdiff_error_message()
        call finish(1)
    end subroutine check

    !> Destroys the handles, frees the buffers and stops with `code`.
    subroutine finish(code)
        integer, intent(in) :: code
        integer :: rc
        rc = code
        if (lensdiff_sampler_destroy(sampler) /= LENSDIFF_STATUS_OK) rc = 1
        sampler = c_null_ptr
        if (lensdiff_problem_destroy(problem) /= LENSDIFF_STATUS_OK) rc = 1
        problem = c_null_ptr
        if (allocated(mask)) deallocate (mask)
        if (allocated(truth)) deallocate (truth)
        if (allocated(wiener)) deallocate (wiener)
        if (allocated(ks)) deallocate (ks)
        if (allocated(mean)) deallocate (mean)
        if (allocated(sd)) deallocate (sd)
        if (allocated(samples)) deallocate (samples)
        if (allocated(chi2)) deallocate (chi2)
        if (allocated(outdir)) deallocate (outdir)
        if (rc /= 0) error stop 1
        stop
    end subroutine finish

    logical function little_endian()
        integer(c_int32_t), parameter :: one = 1_c_int32_t
        integer(c_int8_t) :: bytes(4)
        bytes = transfer(one, bytes)
        little_endian = bytes(1) == 1_c_int8_t
    end function little_endian

    integer function open_out(name) result(u)
        character(len=*), intent(in) :: name
        character(len=256) :: msg
        open (newunit=u, file=outdir//'/'//name, access='stream', form='unformatted', &
            status='replace', action='write', iostat=ios, iomsg=msg)
        if (ios /= 0) then
            write (error_unit, '(2a)') 'lensdiff_example_f: ', trim(msg)
            call finish(1)
        end if
    end function open_out

    subroutine close_out(u, name)
        integer, intent(in) :: u
        character(len=*), intent(in) :: name
        close (u, iostat=ios)
        if (ios /= 0) then
            write (error_unit, '(3a)') 'lensdiff_example_f: cannot write ', outdir//'/', name
            call finish(1)
        end if
    end subroutine close_out

    subroutine write_f32(name, a)
        character(len=*), intent(in) :: name
        real(c_float), intent(in) :: a(:, :)
        integer :: u
        u = open_out(name)
        write (u, iostat=ios) a
        if (ios /= 0) then
            write (error_unit, '(3a)') 'lensdiff_example_f: cannot write ', outdir//'/', name
            call finish(1)
        end if
        call close_out(u, name)
    end subroutine write_f32

    subroutine write_f32_3d(name, a)
        character(len=*), intent(in) :: name
        real(c_float), intent(in) :: a(:, :, :)
        integer :: u
        u = open_out(name)
        write (u, iostat=ios) a
        if (ios /= 0) then
            write (error_unit, '(3a)') 'lensdiff_example_f: cannot write ', outdir//'/', name
            call finish(1)
        end if
        call close_out(u, name)
    end subroutine write_f32_3d

    subroutine write_f64(name, a)
        character(len=*), intent(in) :: name
        real(c_double), intent(in) :: a(:)
        integer :: u
        u = open_out(name)
        write (u, iostat=ios) a
        if (ios /= 0) then
            write (error_unit, '(3a)') 'lensdiff_example_f: cannot write ', outdir//'/', name
            call finish(1)
        end if
        call close_out(u, name)
    end subroutine write_f64

    !> x with d decimals, like C's %.<d>f (F0.d may omit the leading zero).
    function fixed(x, d) result(s)
        real(c_double), intent(in) :: x
        integer, intent(in) :: d
        character(len=:), allocatable :: s
        character(len=64) :: buf, f
        write (f, '(a,i0,a)') '(f0.', d, ')'
        write (buf, f) x
        s = trim(adjustl(buf))
        if (s(1:1) == '.') then
            s = '0'//s
        else if (len(s) > 1) then
            if (s(1:2) == '-.') s = '-0'//s(2:)
        end if
    end function fixed

    real(c_double) function rms(a)
        real(c_float), intent(in) :: a(:, :)
        rms = sqrt(sum(real(a, c_double)**2) / real(size(a), c_double))
    end function rms

end program lensdiff_example
