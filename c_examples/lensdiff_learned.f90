! lensdiff Fortran example with the learned prior: the same run as
! lensdiff_learned.c, through the iso_c_binding module in lensdiff.f90,
! writing the same files (raw little-endian float32/float64, see README.md) so
! that the outputs of the two can be compared byte for byte.
!
!   lensdiff_learned_f OUTDIR [N [MODEL]]
!
! Without MODEL, the library's built-in model "demo-lognormal-hybrid".
program lensdiff_learned
    use, intrinsic :: iso_c_binding, only: c_int, c_int8_t, c_int32_t, c_int64_t, c_size_t, &
        c_float, c_double, c_ptr, c_char, c_null_ptr, c_null_char, c_sizeof
    use, intrinsic :: iso_fortran_env, only: error_unit, output_unit
    use lensdiff
    implicit none

    ! the settings (keep in sync with lensdiff_learned.c and tests/c_examples.rs)
    integer, parameter :: DEFAULT_N = 32
    real(c_double), parameter :: PIXEL_ARCMIN = 0.5_c_double
    real(c_double), parameter :: NOISE_SIGMA = 0.05_c_double
    real(c_double), parameter :: LOGNORMAL_LAMBDA = 0.03_c_double
    integer(c_int64_t), parameter :: SIM_SEED = 7_c_int64_t
    real(c_double), parameter :: SIGMA_E = 0.26_c_double   ! unused: noise set explicitly
    real(c_double), parameter :: N_GAL = 30.0_c_double     ! unused: idem
    real(c_double), parameter :: WIENER_TOL = 1.0e-6_c_double
    integer(c_int32_t), parameter :: WIENER_MAX_ITER = 1000_c_int32_t
    integer(c_int32_t), parameter :: CHAINS_WANTED = 4_c_int32_t
    integer(c_int32_t), parameter :: BATCH = 2_c_int32_t
    integer(c_int32_t), parameter :: LEVELS = 12_c_int32_t
    integer(c_int64_t), parameter :: SAMPLER_SEED = 3_c_int64_t
    character(len=*), parameter :: BUILTIN_MODEL = 'demo-lognormal-hybrid'

    type(c_ptr) :: problem = c_null_ptr, sampler = c_null_ptr
    type(lensdiff_sampler_config) :: cfg
    type(lensdiff_model_info) :: info
    character(len=:), allocatable :: outdir
    character(len=4096) :: model = ''
    logical :: have_model = .false.
    character(kind=c_char), allocatable :: json(:)
    integer(c_int) :: st
    integer :: n, ios, arglen
    integer(c_int) :: version
    integer(c_size_t) :: npix, chains, json_len
    real(c_float), allocatable :: truth(:, :), wiener(:, :), mean(:, :), sd(:, :)
    real(c_float), allocatable :: samples(:, :, :)
    real(c_double), allocatable :: chi2(:)
    integer(c_int32_t) :: iterations
    integer(c_int64_t) :: nfe
    real(c_double) :: seconds
    character(len=32) :: arg

    ! --- arguments ----------------------------------------------------------
    if (command_argument_count() < 1 .or. command_argument_count() > 3) then
        write (error_unit, '(a)') 'usage: lensdiff_learned_f OUTDIR [N [MODEL]]'
        stop 2
    end if
    call get_command_argument(1, length=arglen)
    allocate (character(len=arglen) :: outdir)
    call get_command_argument(1, outdir)
    n = DEFAULT_N
    if (command_argument_count() >= 2) then
        call get_command_argument(2, arg)
        read (arg, *, iostat=ios) n
        if (ios /= 0 .or. verify(trim(arg), '0123456789') /= 0 .or. n < 4 .or. n > 4096) then
            write (error_unit, '(3a)') 'lensdiff_learned_f: N must be an integer in [4, 4096], got ''', &
                trim(arg), ''''
            stop 2
        end if
    end if
    if (command_argument_count() == 3) then
        call get_command_argument(3, model, length=arglen)
        if (arglen > len(model)) then
            write (error_unit, '(a,i0,a)') 'lensdiff_learned_f: MODEL path over ', len(model), &
                ' characters'
            stop 2
        end if
        have_model = .true.
    end if
    if (.not. little_endian()) then
        write (error_unit, '(a)') 'lensdiff_learned_f: big-endian hosts are not supported'
        error stop 1
    end if
    version = lensdiff_version()
    if (version / 10000 /= LENSDIFF_VERSION_MAJOR .or. version < LENSDIFF_VERSION_NUMBER) then
        write (error_unit, '(3a)') 'lensdiff_learned_f: library version ', lensdiff_version_text(), &
            ' does not serve the module'
        error stop 1
    end if
    npix = int(n, c_size_t) * int(n, c_size_t)
    allocate (truth(n, n), wiener(n, n), mean(n, n), sd(n, n))

    ! --- the problem: grid, the Gaussian prior the fields are simulated from (and
    ! the Wiener filter's), uniform noise, a log-normal field and its shear -------
    call check(lensdiff_problem_create(int(n, c_size_t), int(n, c_size_t), PIXEL_ARCMIN, problem), &
        'lensdiff_problem_create')
    call check(lensdiff_problem_set_prior_default(problem), 'lensdiff_problem_set_prior_default')
    call check(lensdiff_problem_set_noise_uniform(problem, NOISE_SIGMA), &
        'lensdiff_problem_set_noise_uniform')
    call check(lensdiff_problem_simulate(problem, LENSDIFF_FIELD_LOGNORMAL, LOGNORMAL_LAMBDA, &
        SIGMA_E, N_GAL, SIM_SEED, truth, npix), 'lensdiff_problem_simulate')
    call check(lensdiff_wiener(problem, WIENER_TOL, WIENER_MAX_ITER, wiener, npix, iterations), &
        'lensdiff_wiener')

    ! --- the learned prior: the samplers of this problem use it from now on -------
    if (have_model) then
        call check(lensdiff_problem_load_model(problem, trim(model)//c_null_char), &
            'lensdiff_problem_load_model')
    else
        call check(lensdiff_problem_load_builtin_model(problem, BUILTIN_MODEL//c_null_char), &
            'lensdiff_problem_load_builtin_model')
    end if
    call check(lensdiff_problem_model_info(problem, info, int(c_sizeof(info), c_size_t)), &
        'lensdiff_problem_model_info')
    ! the JSON description: a buffer that is too short is SHAPE and says the length needed
    allocate (json(256))
    st = lensdiff_problem_model_json(problem, json, size(json, kind=c_size_t), json_len)
    if (st == LENSDIFF_STATUS_SHAPE) then
        deallocate (json)
        allocate (json(json_len))
        st = lensdiff_problem_model_json(problem, json, size(json, kind=c_size_t), json_len)
    end if
    call check(st, 'lensdiff_problem_model_json')

    ! --- posterior sampling with the default sampler (Heun, spectral guidance) ----
    call check(lensdiff_sampler_config_init(cfg), 'lensdiff_sampler_config_init')
    if (cfg%struct_size /= int(c_sizeof(cfg), c_int32_t)) then
        write (error_unit, '(a,i0,a,i0)') 'lensdiff_learned_f: lensdiff_sampler_config is ', &
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
    call write_f32('truth.f32', truth)
    call write_f32('wiener.f32', wiener)
    call write_f32('mean.f32', mean)
    call write_f32('std.f32', sd)
    call write_f32_3d('samples.f32', samples)
    call write_f64('chi2.f64', chi2)

    write (output_unit, '(a,a,a,i0,a,i0,3a,i0,a)') 'lensdiff ', lensdiff_version_text(), &
        ' (Fortran): ', n, 'x', n, ' pixels of ', fixed(PIXEL_ARCMIN, 2), ''', ', chains, ' chains'
    if (have_model) then
        write (output_unit, '(3a)', advance='no') '  model ', trim(model), ': '
    else
        write (output_unit, '(3a)', advance='no') '  model ', BUILTIN_MODEL, ': '
    end if
    write (output_unit, '(2a,i0,a,i0,a,i0,5a,i0,a)') trim(merge('hybrid', 'pure  ', info%hybrid /= 0)), &
        ', ', info%n_params, ' parameters, ', info%levels, ' levels (N a multiple of ', &
        info%side_multiple, '), sigma_data ', fixed(info%sigma_data, 5), ', sigma_max ', &
        fixed(info%sigma_max, 5), ', ', json_len, ' bytes of JSON'
    write (output_unit, '(a,i0,3a,i0,a)') '  sampler: NFE ', nfe, ' per chain, ', fixed(seconds, 3), &
        ' s; wiener: ', iterations, ' CG iterations'
    write (output_unit, '(6a)') '  rmse(wiener) = ', fixed(rmse(wiener, truth), 6), &
        '  rmse(mean) = ', fixed(rmse(mean, truth), 6), '  chi2(1) = ', fixed(chi2(1), 4)
    write (output_unit, '(3a)') '  wrote ', outdir, '/{truth,wiener,mean,std,samples}.f32, chi2.f64'
    call finish(0)

contains

    !> On failure: report, free everything and exit with status 1.
    subroutine check(st, what)
        integer(c_int), intent(in) :: st
        character(len=*), intent(in) :: what
        if (st == LENSDIFF_STATUS_OK) return
        write (error_unit, '(5a)') 'lensdiff_learned_f: ', what, ' failed: ', &
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
        if (allocated(truth)) deallocate (truth)
        if (allocated(wiener)) deallocate (wiener)
        if (allocated(mean)) deallocate (mean)
        if (allocated(sd)) deallocate (sd)
        if (allocated(samples)) deallocate (samples)
        if (allocated(chi2)) deallocate (chi2)
        if (allocated(json)) deallocate (json)
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
            write (error_unit, '(2a)') 'lensdiff_learned_f: ', trim(msg)
            call finish(1)
        end if
    end function open_out

    subroutine close_out(u, name)
        integer, intent(in) :: u
        character(len=*), intent(in) :: name
        close (u, iostat=ios)
        if (ios /= 0) then
            write (error_unit, '(3a)') 'lensdiff_learned_f: cannot write ', outdir//'/', name
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
            write (error_unit, '(3a)') 'lensdiff_learned_f: cannot write ', outdir//'/', name
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
            write (error_unit, '(3a)') 'lensdiff_learned_f: cannot write ', outdir//'/', name
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
            write (error_unit, '(3a)') 'lensdiff_learned_f: cannot write ', outdir//'/', name
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

    !> Root-mean-square difference of two maps.
    real(c_double) function rmse(a, b)
        real(c_float), intent(in) :: a(:, :), b(:, :)
        rmse = sqrt(sum((real(a, c_double) - real(b, c_double))**2) / real(size(a), c_double))
    end function rmse

end program lensdiff_learned
