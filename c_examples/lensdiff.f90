! Fortran 2008 bindings (iso_c_binding) to the lensdiff C ABI, include/lensdiff.h.
!
! Installed by scripts/install.sh as PREFIX/include/lensdiff.f90; compile it
! together with your program (module files are compiler-specific) and link
! with `pkg-config --libs lensdiff`.
!
! Conventions, following the C header:
!  * every function returns a status (integer(c_int), LENSDIFF_STATUS_*);
!    on failure lensdiff_error_message() describes it;
!  * handles are type(c_ptr) (c_null_ptr before creation; destroy accepts it);
!  * maps are row-major [y][x] in C, i.e. a Fortran array map(nx, ny) with
!    x the fastest index; buffer lengths are integer(c_size_t) element counts;
!  * C's unsigned integers are mapped to signed kinds of the same size
!    (uint32_t -> c_int32_t, uint64_t -> c_int64_t, uint8_t -> c_int8_t);
!  * arguments that C allows to be NULL are type(c_ptr), value (pass
!    c_null_ptr or c_loc(x)) where they are arrays (lensdiff_ks b_out,
!    lensdiff_problem_bin_catalogue weight); the optional scalar outputs of
!    lensdiff_wiener and lensdiff_sampler_stats are required here.
module lensdiff
    use, intrinsic :: iso_c_binding, only: c_int, c_int8_t, c_int32_t, c_int64_t, &
        c_size_t, c_float, c_double, c_char, c_ptr, c_null_ptr, c_associated, c_f_pointer
    implicit none
    private

    ! --- versions -----------------------------------------------------------
    integer(c_int), parameter, public :: LENSDIFF_VERSION_MAJOR = 0
    integer(c_int), parameter, public :: LENSDIFF_VERSION_MINOR = 4
    integer(c_int), parameter, public :: LENSDIFF_VERSION_PATCH = 0
    integer(c_int), parameter, public :: LENSDIFF_VERSION_NUMBER = 400

    ! --- lensdiff_status ------------------------------------------------------
    integer(c_int), parameter, public :: LENSDIFF_STATUS_OK = 0
    integer(c_int), parameter, public :: LENSDIFF_STATUS_NULL_POINTER = 1
    integer(c_int), parameter, public :: LENSDIFF_STATUS_INVALID_ARGUMENT = 2
    integer(c_int), parameter, public :: LENSDIFF_STATUS_SHAPE = 3
    integer(c_int), parameter, public :: LENSDIFF_STATUS_NON_FINITE = 4
    integer(c_int), parameter, public :: LENSDIFF_STATUS_NEGATIVE_VARIANCE = 5
    integer(c_int), parameter, public :: LENSDIFF_STATUS_FULLY_MASKED = 6
    integer(c_int), parameter, public :: LENSDIFF_STATUS_NOT_CONVERGED = 7
    integer(c_int), parameter, public :: LENSDIFF_STATUS_IO = 8
    integer(c_int), parameter, public :: LENSDIFF_STATUS_FORMAT = 9
    integer(c_int), parameter, public :: LENSDIFF_STATUS_CALL_ORDER = 10
    integer(c_int), parameter, public :: LENSDIFF_STATUS_STALE_HANDLE = 11
    integer(c_int), parameter, public :: LENSDIFF_STATUS_UNSUPPORTED = 12
    integer(c_int), parameter, public :: LENSDIFF_STATUS_INTERNAL = 13
    integer(c_int), parameter, public :: LENSDIFF_STATUS_DEVICE = 14

    ! --- projections (lensdiff_problem_bin_catalogue) --------------------------
    integer(c_int32_t), parameter, public :: LENSDIFF_PROJECTION_GNOMONIC = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_PROJECTION_PLATE = 1

    ! --- fields (lensdiff_problem_simulate) ------------------------------------
    integer(c_int32_t), parameter, public :: LENSDIFF_FIELD_GAUSSIAN = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_FIELD_LOGNORMAL = 1

    ! --- samplers ---------------------------------------------------------------
    integer(c_int32_t), parameter, public :: LENSDIFF_SAMPLER_HEUN = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_SAMPLER_EDM = 1
    integer(c_int32_t), parameter, public :: LENSDIFF_SAMPLER_EULER_MARUYAMA = 2
    integer(c_int32_t), parameter, public :: LENSDIFF_SAMPLER_PREDICTOR_CORRECTOR = 3
    integer(c_int32_t), parameter, public :: LENSDIFF_SAMPLER_ANNEALED_HMC = 4

    ! --- guidance ---------------------------------------------------------------
    integer(c_int32_t), parameter, public :: LENSDIFF_GUIDANCE_SPECTRAL = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_GUIDANCE_ANNEALED = 1
    integer(c_int32_t), parameter, public :: LENSDIFF_GUIDANCE_TWEEDIE = 2
    integer(c_int32_t), parameter, public :: LENSDIFF_GUIDANCE_TWEEDIE_INFLATED = 3

    ! --- refinement ---------------------------------------------------------------
    integer(c_int32_t), parameter, public :: LENSDIFF_REFINE_NONE = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_REFINE_LANGEVIN = 1
    integer(c_int32_t), parameter, public :: LENSDIFF_REFINE_HMC = 2

    ! --- devices ------------------------------------------------------------------
    integer(c_int32_t), parameter, public :: LENSDIFF_DEVICE_CPU = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_DEVICE_CUDA = 1

    ! --- source n(z) and transfer functions of lensdiff_cosmology -----------------
    integer(c_int32_t), parameter, public :: LENSDIFF_NZ_PLANE = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_NZ_GAUSSIAN = 1
    integer(c_int32_t), parameter, public :: LENSDIFF_NZ_SMAIL = 2
    integer(c_int32_t), parameter, public :: LENSDIFF_TRANSFER_EH = 0
    integer(c_int32_t), parameter, public :: LENSDIFF_TRANSFER_EH_NOWIGGLE = 1
    integer(c_int32_t), parameter, public :: LENSDIFF_TRANSFER_BBKS = 2

    ! lensdiff_cosmology, field for field (112 bytes, naturally aligned).
    ! Always initialise with lensdiff_cosmology_init.
    type, bind(C), public :: lensdiff_cosmology
        integer(c_int32_t) :: struct_size   ! uint32_t, set by lensdiff_cosmology_init
        integer(c_int32_t) :: nz_kind       ! LENSDIFF_NZ_*
        real(c_double)     :: omega_c
        real(c_double)     :: omega_b
        real(c_double)     :: h
        real(c_double)     :: n_s
        real(c_double)     :: sigma8
        real(c_double)     :: w0
        real(c_double)     :: wa
        real(c_double)     :: t_cmb         ! K
        real(c_double)     :: nz_params(4)  ! plane: z; gaussian: mean, sigma; smail: a, b, z0, z_max
        integer(c_int32_t) :: transfer      ! LENSDIFF_TRANSFER_*
        integer(c_int32_t) :: nonlinear     ! 1 = halofit, 0 = linear
    end type lensdiff_cosmology

    ! lensdiff_sampler_config, field for field (96 bytes, naturally aligned).
    ! Always initialise with lensdiff_sampler_config_init.
    type, bind(C), public :: lensdiff_sampler_config
        integer(c_int32_t) :: struct_size   ! uint32_t, set by _config_init
        integer(c_int32_t) :: sampler       ! LENSDIFF_SAMPLER_*
        integer(c_int32_t) :: guidance      ! LENSDIFF_GUIDANCE_*
        integer(c_int32_t) :: levels        ! uint32_t, 0 = sampler default
        real(c_double)     :: sigma_max     ! 0 = automatic
        real(c_double)     :: sigma_min
        real(c_double)     :: anneal_c
        real(c_double)     :: inner_tol
        integer(c_int32_t) :: refine        ! LENSDIFF_REFINE_*
        integer(c_int32_t) :: refine_steps  ! uint32_t
        real(c_double)     :: refine_step
        integer(c_int64_t) :: seed          ! uint64_t
        integer(c_int32_t) :: chains        ! uint32_t
        integer(c_int32_t) :: batch         ! uint32_t
        integer(c_int64_t) :: first_chain   ! uint64_t
        integer(c_int32_t) :: device_kind   ! LENSDIFF_DEVICE_*
        integer(c_int32_t) :: device_ordinal
    end type lensdiff_sampler_config

    ! lensdiff_model_info (lensdiff_problem_model_info; pass its size, 48 bytes)
    type, bind(C), public :: lensdiff_model_info
        integer(c_int32_t) :: hybrid        ! 1 hybrid, 0 pure
        integer(c_int32_t) :: levels        ! uint32_t
        integer(c_int32_t) :: side_multiple ! uint32_t
        integer(c_int32_t) :: reserved      ! 0
        integer(c_int64_t) :: n_params      ! uint64_t
        real(c_double)     :: pixel_arcmin
        real(c_double)     :: sigma_data
        real(c_double)     :: sigma_max     ! 0 where the file does not say
    end type lensdiff_model_info

    public :: lensdiff_last_error, lensdiff_status_name, lensdiff_version, &
        lensdiff_version_string
    public :: lensdiff_problem_create, lensdiff_problem_destroy, lensdiff_problem_shape, &
        lensdiff_problem_set_shear, lensdiff_problem_set_noise_std, &
        lensdiff_problem_set_noise_uniform, lensdiff_problem_set_mask, &
        lensdiff_problem_set_prior_cl, lensdiff_problem_set_prior_default, &
        lensdiff_cosmology_init, lensdiff_problem_set_prior_cosmology, &
        lensdiff_problem_bin_catalogue, lensdiff_problem_simulate, lensdiff_ks, lensdiff_wiener
    public :: lensdiff_sampler_config_init, lensdiff_sampler_create, lensdiff_sampler_destroy, &
        lensdiff_sampler_run, lensdiff_sampler_run_mpi, lensdiff_sampler_chains, &
        lensdiff_sampler_mean, lensdiff_sampler_std, lensdiff_sampler_samples, lensdiff_sampler_chi2, &
        lensdiff_sampler_acceptance, lensdiff_sampler_stats, lensdiff_sampler_set_cuda_stream, &
        lensdiff_sampler_inner_iterations
    public :: lensdiff_problem_set_joint_prior_cosmology, lensdiff_problem_load_joint_model, &
        lensdiff_problem_load_joint_model_buffer, lensdiff_problem_joint_params, &
        lensdiff_problem_joint_param, lensdiff_joint_sampler_config_init, &
        lensdiff_joint_sampler_create, lensdiff_sampler_params, lensdiff_sampler_theta
    public :: lensdiff_problem_load_model, lensdiff_problem_load_model_buffer, &
        lensdiff_problem_load_builtin_model, lensdiff_problem_clear_model, &
        lensdiff_problem_model_info, lensdiff_problem_model_json
    public :: lensdiff_error_message, lensdiff_status_string, lensdiff_version_text, &
        lensdiff_string

    interface
        ! --- errors and versions ----------------------------------------------
        function lensdiff_last_error() bind(C, name='lensdiff_last_error')
            import :: c_ptr
            type(c_ptr) :: lensdiff_last_error
        end function lensdiff_last_error

        function lensdiff_status_name(status) bind(C, name='lensdiff_status_name')
            import :: c_ptr, c_int
            integer(c_int), value :: status
            type(c_ptr) :: lensdiff_status_name
        end function lensdiff_status_name

        function lensdiff_version() bind(C, name='lensdiff_version')
            import :: c_int32_t
            integer(c_int32_t) :: lensdiff_version
        end function lensdiff_version

        function lensdiff_version_string() bind(C, name='lensdiff_version_string')
            import :: c_ptr
            type(c_ptr) :: lensdiff_version_string
        end function lensdiff_version_string

        ! --- problem ----------------------------------------------------------
        function lensdiff_problem_create(nx, ny, pixel_arcmin, out) &
            bind(C, name='lensdiff_problem_create')
            import :: c_int, c_size_t, c_double, c_ptr
            integer(c_size_t), value :: nx, ny
            real(c_double), value :: pixel_arcmin
            type(c_ptr), intent(out) :: out
            integer(c_int) :: lensdiff_problem_create
        end function lensdiff_problem_create

        function lensdiff_problem_destroy(p) bind(C, name='lensdiff_problem_destroy')
            import :: c_int, c_ptr
            type(c_ptr), value :: p
            integer(c_int) :: lensdiff_problem_destroy
        end function lensdiff_problem_destroy

        function lensdiff_problem_shape(p, nx, ny) bind(C, name='lensdiff_problem_shape')
            import :: c_int, c_ptr, c_size_t
            type(c_ptr), value :: p
            integer(c_size_t), intent(out) :: nx, ny
            integer(c_int) :: lensdiff_problem_shape
        end function lensdiff_problem_shape

        function lensdiff_problem_set_shear(p, g1, g2, len) &
            bind(C, name='lensdiff_problem_set_shear')
            import :: c_int, c_ptr, c_float, c_size_t
            type(c_ptr), value :: p
            real(c_float), intent(in) :: g1(*), g2(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_problem_set_shear
        end function lensdiff_problem_set_shear

        function lensdiff_problem_set_noise_std(p, std1, std2, len) &
            bind(C, name='lensdiff_problem_set_noise_std')
            import :: c_int, c_ptr, c_float, c_size_t
            type(c_ptr), value :: p
            real(c_float), intent(in) :: std1(*), std2(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_problem_set_noise_std
        end function lensdiff_problem_set_noise_std

        function lensdiff_problem_set_noise_uniform(p, sigma) &
            bind(C, name='lensdiff_problem_set_noise_uniform')
            import :: c_int, c_ptr, c_double
            type(c_ptr), value :: p
            real(c_double), value :: sigma
            integer(c_int) :: lensdiff_problem_set_noise_uniform
        end function lensdiff_problem_set_noise_uniform

        ! mask: non-zero = observed
        function lensdiff_problem_set_mask(p, mask, len) bind(C, name='lensdiff_problem_set_mask')
            import :: c_int, c_ptr, c_int8_t, c_size_t
            type(c_ptr), value :: p
            integer(c_int8_t), intent(in) :: mask(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_problem_set_mask
        end function lensdiff_problem_set_mask

        function lensdiff_problem_set_prior_cl(p, ell, cl, n) &
            bind(C, name='lensdiff_problem_set_prior_cl')
            import :: c_int, c_ptr, c_double, c_size_t
            type(c_ptr), value :: p
            real(c_double), intent(in) :: ell(*), cl(*)
            integer(c_size_t), value :: n
            integer(c_int) :: lensdiff_problem_set_prior_cl
        end function lensdiff_problem_set_prior_cl

        function lensdiff_problem_set_prior_default(p) &
            bind(C, name='lensdiff_problem_set_prior_default')
            import :: c_int, c_ptr
            type(c_ptr), value :: p
            integer(c_int) :: lensdiff_problem_set_prior_default
        end function lensdiff_problem_set_prior_default

        function lensdiff_cosmology_init(cosmo) bind(C, name='lensdiff_cosmology_init')
            import :: c_int, lensdiff_cosmology
            type(lensdiff_cosmology), intent(out) :: cosmo
            integer(c_int) :: lensdiff_cosmology_init
        end function lensdiff_cosmology_init

        function lensdiff_problem_set_prior_cosmology(p, cosmo) &
            bind(C, name='lensdiff_problem_set_prior_cosmology')
            import :: c_int, c_ptr, lensdiff_cosmology
            type(c_ptr), value :: p
            type(lensdiff_cosmology), intent(in) :: cosmo
            integer(c_int) :: lensdiff_problem_set_prior_cosmology
        end function lensdiff_problem_set_prior_cosmology

        ! weight: c_null_ptr or c_loc(w) of n doubles
        function lensdiff_problem_bin_catalogue(p, ra, dec, e1, e2, weight, n, projection) &
            bind(C, name='lensdiff_problem_bin_catalogue')
            import :: c_int, c_ptr, c_double, c_size_t, c_int32_t
            type(c_ptr), value :: p
            real(c_double), intent(in) :: ra(*), dec(*), e1(*), e2(*)
            type(c_ptr), value :: weight
            integer(c_size_t), value :: n
            integer(c_int32_t), value :: projection
            integer(c_int) :: lensdiff_problem_bin_catalogue
        end function lensdiff_problem_bin_catalogue

        function lensdiff_problem_simulate(p, field, lambda, sigma_e, n_gal, seed, kappa_out, &
            len) bind(C, name='lensdiff_problem_simulate')
            import :: c_int, c_ptr, c_int32_t, c_double, c_int64_t, c_float, c_size_t
            type(c_ptr), value :: p
            integer(c_int32_t), value :: field
            real(c_double), value :: lambda, sigma_e, n_gal
            integer(c_int64_t), value :: seed
            real(c_float), intent(out) :: kappa_out(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_problem_simulate
        end function lensdiff_problem_simulate

        ! b_out: c_null_ptr or c_loc(b) of len floats
        function lensdiff_ks(p, smooth_px, e_out, b_out, len) bind(C, name='lensdiff_ks')
            import :: c_int, c_ptr, c_double, c_float, c_size_t
            type(c_ptr), value :: p
            real(c_double), value :: smooth_px
            real(c_float), intent(out) :: e_out(*)
            type(c_ptr), value :: b_out
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_ks
        end function lensdiff_ks

        function lensdiff_wiener(p, tol, max_iter, out, len, iterations) &
            bind(C, name='lensdiff_wiener')
            import :: c_int, c_ptr, c_double, c_int32_t, c_float, c_size_t
            type(c_ptr), value :: p
            real(c_double), value :: tol
            integer(c_int32_t), value :: max_iter
            real(c_float), intent(out) :: out(*)
            integer(c_size_t), value :: len
            integer(c_int32_t), intent(out) :: iterations
            integer(c_int) :: lensdiff_wiener
        end function lensdiff_wiener

        ! --- sampler ----------------------------------------------------------
        function lensdiff_sampler_config_init(cfg) bind(C, name='lensdiff_sampler_config_init')
            import :: c_int, lensdiff_sampler_config
            type(lensdiff_sampler_config), intent(out) :: cfg
            integer(c_int) :: lensdiff_sampler_config_init
        end function lensdiff_sampler_config_init

        function lensdiff_sampler_create(p, cfg, out) bind(C, name='lensdiff_sampler_create')
            import :: c_int, c_ptr, lensdiff_sampler_config
            type(c_ptr), value :: p
            type(lensdiff_sampler_config), intent(in) :: cfg
            type(c_ptr), intent(out) :: out
            integer(c_int) :: lensdiff_sampler_create
        end function lensdiff_sampler_create

        function lensdiff_sampler_destroy(s) bind(C, name='lensdiff_sampler_destroy')
            import :: c_int, c_ptr
            type(c_ptr), value :: s
            integer(c_int) :: lensdiff_sampler_destroy
        end function lensdiff_sampler_destroy

        function lensdiff_sampler_run(s) bind(C, name='lensdiff_sampler_run')
            import :: c_int, c_ptr
            type(c_ptr), value :: s
            integer(c_int) :: lensdiff_sampler_run
        end function lensdiff_sampler_run

        ! CUDA samplers only: launch on the caller's stream (a cudaStream_t as
        ! type(c_ptr); c_null_ptr = the default stream).
        function lensdiff_sampler_set_cuda_stream(s, stream) &
                bind(C, name='lensdiff_sampler_set_cuda_stream')
            import :: c_int, c_ptr
            type(c_ptr), value :: s
            type(c_ptr), value :: stream
            integer(c_int) :: lensdiff_sampler_set_cuda_stream
        end function lensdiff_sampler_set_cuda_stream

        ! Collective over the communicator comm, a Fortran MPI handle: comm with
        ! `use mpi`, comm%MPI_VAL with `use mpi_f08`, MPI_Comm_c2f(comm) in C.
        ! The library duplicates comm and never initialises or finalises MPI.
        ! gather_samples /= 0: rank 0 holds all samples and chi2 values; mean and
        ! std are available on every rank. LENSDIFF_STATUS_UNSUPPORTED when the
        ! library was built without the `mpi` cargo feature.
        function lensdiff_sampler_run_mpi(s, comm, gather_samples) &
            bind(C, name='lensdiff_sampler_run_mpi')
            import :: c_int, c_ptr, c_int32_t
            type(c_ptr), value :: s
            integer(c_int32_t), value :: comm, gather_samples
            integer(c_int) :: lensdiff_sampler_run_mpi
        end function lensdiff_sampler_run_mpi

        function lensdiff_sampler_chains(s, chains) bind(C, name='lensdiff_sampler_chains')
            import :: c_int, c_ptr, c_size_t
            type(c_ptr), value :: s
            integer(c_size_t), intent(out) :: chains
            integer(c_int) :: lensdiff_sampler_chains
        end function lensdiff_sampler_chains

        function lensdiff_sampler_mean(s, out, len) bind(C, name='lensdiff_sampler_mean')
            import :: c_int, c_ptr, c_float, c_size_t
            type(c_ptr), value :: s
            real(c_float), intent(out) :: out(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_sampler_mean
        end function lensdiff_sampler_mean

        function lensdiff_sampler_std(s, out, len) bind(C, name='lensdiff_sampler_std')
            import :: c_int, c_ptr, c_float, c_size_t
            type(c_ptr), value :: s
            real(c_float), intent(out) :: out(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_sampler_std
        end function lensdiff_sampler_std

        ! out: [chain][y][x], len = chains * nx * ny
        function lensdiff_sampler_samples(s, out, len) bind(C, name='lensdiff_sampler_samples')
            import :: c_int, c_ptr, c_float, c_size_t
            type(c_ptr), value :: s
            real(c_float), intent(out) :: out(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_sampler_samples
        end function lensdiff_sampler_samples

        function lensdiff_sampler_chi2(s, out, len) bind(C, name='lensdiff_sampler_chi2')
            import :: c_int, c_ptr, c_double, c_size_t
            type(c_ptr), value :: s
            real(c_double), intent(out) :: out(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_sampler_chi2
        end function lensdiff_sampler_chi2

        function lensdiff_sampler_acceptance(s, out, len) &
            bind(C, name='lensdiff_sampler_acceptance')
            import :: c_int, c_ptr, c_double, c_size_t
            type(c_ptr), value :: s
            real(c_double), intent(out) :: out(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_sampler_acceptance
        end function lensdiff_sampler_acceptance

        function lensdiff_sampler_stats(s, nfe, seconds) bind(C, name='lensdiff_sampler_stats')
            import :: c_int, c_ptr, c_int64_t, c_double
            type(c_ptr), value :: s
            integer(c_int64_t), intent(out) :: nfe
            real(c_double), intent(out) :: seconds
            integer(c_int) :: lensdiff_sampler_stats
        end function lensdiff_sampler_stats

        function lensdiff_sampler_inner_iterations(s, out) &
            bind(C, name='lensdiff_sampler_inner_iterations')
            import :: c_int, c_ptr, c_int64_t
            type(c_ptr), value :: s
            integer(c_int64_t), intent(out) :: out
            integer(c_int) :: lensdiff_sampler_inner_iterations
        end function lensdiff_sampler_inner_iterations

        ! --- libc -------------------------------------------------------------
        ! --- joint sampling of parameters and map (since 0.3) -------------------
        ! names: comma-separated, NUL-terminated ('omega_c,sigma8'//c_null_char)
        function lensdiff_problem_set_joint_prior_cosmology(p, cosmo, names, prior_mean, &
            prior_std, n_params) bind(C, name='lensdiff_problem_set_joint_prior_cosmology')
            import :: c_int, c_ptr, c_char, c_double, c_size_t, lensdiff_cosmology
            type(c_ptr), value :: p
            type(lensdiff_cosmology), intent(in) :: cosmo
            character(kind=c_char), intent(in) :: names(*)
            real(c_double), intent(in) :: prior_mean(*), prior_std(*)
            integer(c_size_t), value :: n_params
            integer(c_int) :: lensdiff_problem_set_joint_prior_cosmology
        end function lensdiff_problem_set_joint_prior_cosmology

        ! path NUL-terminated; guidance_cosmo: c_null_ptr (the model's cosmology)
        ! or c_loc(cosmo) of a lensdiff_cosmology with the target attribute
        function lensdiff_problem_load_joint_model(p, path, guidance_cosmo) &
            bind(C, name='lensdiff_problem_load_joint_model')
            import :: c_int, c_ptr, c_char
            type(c_ptr), value :: p
            character(kind=c_char), intent(in) :: path(*)
            type(c_ptr), value :: guidance_cosmo
            integer(c_int) :: lensdiff_problem_load_joint_model
        end function lensdiff_problem_load_joint_model

        function lensdiff_problem_load_joint_model_buffer(p, data, len, guidance_cosmo) &
            bind(C, name='lensdiff_problem_load_joint_model_buffer')
            import :: c_int, c_ptr, c_int8_t, c_size_t
            type(c_ptr), value :: p
            integer(c_int8_t), intent(in) :: data(*)
            integer(c_size_t), value :: len
            type(c_ptr), value :: guidance_cosmo
            integer(c_int) :: lensdiff_problem_load_joint_model_buffer
        end function lensdiff_problem_load_joint_model_buffer

        ! --- the learned map prior (since 0.4) -------------------------------------
        ! path and name NUL-terminated
        function lensdiff_problem_load_model(p, path) bind(C, name='lensdiff_problem_load_model')
            import :: c_int, c_ptr, c_char
            type(c_ptr), value :: p
            character(kind=c_char), intent(in) :: path(*)
            integer(c_int) :: lensdiff_problem_load_model
        end function lensdiff_problem_load_model

        function lensdiff_problem_load_model_buffer(p, data, len) &
            bind(C, name='lensdiff_problem_load_model_buffer')
            import :: c_int, c_ptr, c_int8_t, c_size_t
            type(c_ptr), value :: p
            integer(c_int8_t), intent(in) :: data(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_problem_load_model_buffer
        end function lensdiff_problem_load_model_buffer

        function lensdiff_problem_load_builtin_model(p, name) &
            bind(C, name='lensdiff_problem_load_builtin_model')
            import :: c_int, c_ptr, c_char
            type(c_ptr), value :: p
            character(kind=c_char), intent(in) :: name(*)
            integer(c_int) :: lensdiff_problem_load_builtin_model
        end function lensdiff_problem_load_builtin_model

        function lensdiff_problem_clear_model(p) bind(C, name='lensdiff_problem_clear_model')
            import :: c_int, c_ptr
            type(c_ptr), value :: p
            integer(c_int) :: lensdiff_problem_clear_model
        end function lensdiff_problem_clear_model

        ! info_size: c_sizeof(info)
        function lensdiff_problem_model_info(p, info, info_size) &
            bind(C, name='lensdiff_problem_model_info')
            import :: c_int, c_ptr, c_size_t, lensdiff_model_info
            type(c_ptr), value :: p
            type(lensdiff_model_info), intent(out) :: info
            integer(c_size_t), value :: info_size
            integer(c_int) :: lensdiff_problem_model_info
        end function lensdiff_problem_model_info

        ! buf receives NUL-terminated JSON (buf_len bytes); needed: its length with the NUL
        function lensdiff_problem_model_json(p, buf, buf_len, needed) &
            bind(C, name='lensdiff_problem_model_json')
            import :: c_int, c_ptr, c_char, c_size_t
            type(c_ptr), value :: p
            character(kind=c_char), intent(out) :: buf(*)
            integer(c_size_t), value :: buf_len
            integer(c_size_t), intent(out) :: needed
            integer(c_int) :: lensdiff_problem_model_json
        end function lensdiff_problem_model_json

        function lensdiff_problem_joint_params(p, n_params) &
            bind(C, name='lensdiff_problem_joint_params')
            import :: c_int, c_ptr, c_size_t
            type(c_ptr), value :: p
            integer(c_size_t), intent(out) :: n_params
            integer(c_int) :: lensdiff_problem_joint_params
        end function lensdiff_problem_joint_params

        ! index from 0; name receives a NUL-terminated string (name_len bytes)
        function lensdiff_problem_joint_param(p, index, name, name_len, prior_mean, prior_std) &
            bind(C, name='lensdiff_problem_joint_param')
            import :: c_int, c_ptr, c_char, c_double, c_size_t
            type(c_ptr), value :: p
            integer(c_size_t), value :: index, name_len
            character(kind=c_char), intent(out) :: name(*)
            real(c_double), intent(out) :: prior_mean, prior_std
            integer(c_int) :: lensdiff_problem_joint_param
        end function lensdiff_problem_joint_param

        function lensdiff_joint_sampler_config_init(cfg) &
            bind(C, name='lensdiff_joint_sampler_config_init')
            import :: c_int, lensdiff_sampler_config
            type(lensdiff_sampler_config), intent(out) :: cfg
            integer(c_int) :: lensdiff_joint_sampler_config_init
        end function lensdiff_joint_sampler_config_init

        function lensdiff_joint_sampler_create(p, cfg, out) &
            bind(C, name='lensdiff_joint_sampler_create')
            import :: c_int, c_ptr, lensdiff_sampler_config
            type(c_ptr), value :: p
            type(lensdiff_sampler_config), intent(in) :: cfg
            type(c_ptr), intent(out) :: out
            integer(c_int) :: lensdiff_joint_sampler_create
        end function lensdiff_joint_sampler_create

        function lensdiff_sampler_params(s, n_params) bind(C, name='lensdiff_sampler_params')
            import :: c_int, c_ptr, c_size_t
            type(c_ptr), value :: s
            integer(c_size_t), intent(out) :: n_params
            integer(c_int) :: lensdiff_sampler_params
        end function lensdiff_sampler_params

        ! out(n_params, chains) in Fortran order is the C [chains][n_params]
        function lensdiff_sampler_theta(s, out, len) bind(C, name='lensdiff_sampler_theta')
            import :: c_int, c_ptr, c_double, c_size_t
            type(c_ptr), value :: s
            real(c_double), intent(out) :: out(*)
            integer(c_size_t), value :: len
            integer(c_int) :: lensdiff_sampler_theta
        end function lensdiff_sampler_theta

        function c_strlen(s) bind(C, name='strlen')
            import :: c_ptr, c_size_t
            type(c_ptr), value :: s
            integer(c_size_t) :: c_strlen
        end function c_strlen
    end interface

contains

    !> A NUL-terminated C string as a Fortran string ("" for a NULL pointer).
    function lensdiff_string(p) result(s)
        type(c_ptr), intent(in) :: p
        character(len=:), allocatable :: s
        character(kind=c_char), pointer :: chars(:)
        integer(c_size_t) :: n, i

        if (.not. c_associated(p)) then
            s = ''
            return
        end if
        n = c_strlen(p)
        allocate (character(len=n) :: s)
        if (n == 0) return
        call c_f_pointer(p, chars, [n])
        do i = 1, n
            s(i:i) = chars(i)
        end do
    end function lensdiff_string

    !> The message of the last failed call on this thread (lensdiff_last_error).
    function lensdiff_error_message() result(msg)
        character(len=:), allocatable :: msg
        msg = lensdiff_string(lensdiff_last_error())
    end function lensdiff_error_message

    !> The name of a status code, e.g. "LENSDIFF_STATUS_SHAPE".
    function lensdiff_status_string(status) result(name)
        integer(c_int), intent(in) :: status
        character(len=:), allocatable :: name
        if (status < LENSDIFF_STATUS_OK .or. status > LENSDIFF_STATUS_DEVICE) then
            ! lensdiff_status_name takes the C enum; keep unknown values away from it
            name = 'unknown lensdiff status'
        else
            name = lensdiff_string(lensdiff_status_name(status))
        end if
    end function lensdiff_status_string

    !> The library version at run time as a string, e.g. "0.1.0".
    function lensdiff_version_text() result(v)
        character(len=:), allocatable :: v
        v = lensdiff_string(lensdiff_version_string())
    end function lensdiff_version_text

end module lensdiff
