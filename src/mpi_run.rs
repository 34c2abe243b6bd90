//! MPI-distributed chains (cargo feature `mpi`, rsmpi).
//!
//! The host program owns MPI: lensdiff never initialises or finalises it. A
//! run duplicates the caller's communicator, runs this rank's chains
//! ([`crate::distributed::rank_chains`]), gathers per-block moments (and,
//! optionally, the samples and per-chain diagnostics) to rank 0 in block order,
//! merges them there and broadcasts the mean and std to every rank. The
//! duplicate is freed before returning. Only the calling thread calls MPI, so
//! its worker threads never do: under `MPI_THREAD_FUNNELED` or higher they run
//! in parallel; under `MPI_THREAD_SINGLE` the chains run on the calling thread.

use std::time::Instant;

use ::mpi::datatype::PartitionMut;
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::traits::*;
use ::mpi::Count;

use crate::distributed::rank_chains;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::sampler::moments::Moments;
use crate::sampler::{sample, Model, RunSpec, SampleSet, SamplerConfig};

/// What a distributed run leaves on one rank.
#[derive(Debug)]
pub struct DistributedRun {
    /// This rank's chains (global indices `first_chain..`).
    pub local: Option<SampleSet>,
    /// Merged moments over all chains (on every rank).
    pub moments: Moments,
    /// All chains in global order (rank 0, when gathered): samples, chi²,
    /// acceptance (HMC), NFE and inner iterations of the whole run, and as
    /// its time the slowest rank's compute plus rank 0's communication.
    pub gathered: Option<SampleSet>,
    /// Number of chains over all ranks.
    pub chains: usize,
    /// Reduced shear chi² of every chain, in global order (rank 0, gathered
    /// whether or not the samples are).
    pub chi2: Option<Vec<f64>>,
    /// Metropolis acceptance of every chain (rank 0; HMC only).
    pub acceptance: Option<Vec<f64>>,
    /// Score evaluations per chain.
    pub nfe: u64,
    /// Inner conjugate-gradient iterations summed over all chains of all ranks
    /// (on every rank).
    pub inner_iterations: u64,
    /// Seconds spent sampling on this rank.
    pub compute_seconds: f64,
    /// Seconds spent in MPI calls on this rank (including waiting for others).
    pub comm_seconds: f64,
    /// Largest compute time over the ranks.
    pub max_compute_seconds: f64,
    /// Number of ranks.
    pub ranks: usize,
}

impl DistributedRun {
    /// The chains this rank reports: all of them on rank 0 of a gathered run,
    /// else this rank's own (possibly none, on the grid `grid`).
    pub fn into_set(self, grid: Grid) -> SampleSet {
        match (self.gathered, self.local) {
            (Some(all), _) => all,
            (None, Some(local)) => local,
            (None, None) => SampleSet {
                grid,
                first_chain: 0,
                samples: vec![],
                params: None,
                chi2: vec![],
                acceptance: None,
                nfe: self.nfe,
                inner_iterations: 0,
                seconds: self.compute_seconds + self.comm_seconds,
            },
        }
    }
}

/// This rank's index among the ranks on its node and their number
/// (`MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)`): the way to point each rank at
/// its own GPU (`cuda:(node_rank % gpus_per_node)`) once the CUDA backend lands.
pub fn node_rank(comm: &SimpleCommunicator) -> (usize, usize) {
    let node = comm.split_shared(comm.rank());
    (node.rank() as usize, node.size() as usize)
}

/// Gathers variable-length slices to rank 0 (in rank order).
fn gather<T: Equivalence + Copy + Default>(
    comm: &SimpleCommunicator,
    local: &[T],
) -> Option<Vec<T>> {
    let root = comm.process_at_rank(0);
    let n = local.len() as Count;
    if comm.rank() == 0 {
        let mut counts = vec![0 as Count; comm.size() as usize];
        root.gather_into_root(&n, &mut counts[..]);
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |acc, &c| {
                let d = *acc;
                *acc += c;
                Some(d)
            })
            .collect();
        let total: Count = counts.iter().sum();
        let mut buf = vec![T::default(); total as usize];
        {
            let mut part = PartitionMut::new(&mut buf[..], counts, &displs[..]);
            root.gather_varcount_into_root(local, &mut part);
        }
        Some(buf)
    } else {
        root.gather_into(&n);
        root.gather_varcount_into(local);
        None
    }
}

/// Runs the chains of `run` split over the ranks of `comm` (see module docs),
/// each rank on `run.device`.
pub fn sample_distributed(
    comm: &SimpleCommunicator,
    model: &dyn Model,
    cfg: &SamplerConfig,
    run: &RunSpec,
    gather_samples: bool,
    single_thread: bool,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<DistributedRun> {
    let chains = run.chains;
    if chains == 0 {
        return Err(Error::invalid("chains", "need at least one chain"));
    }
    if run.first_chain.checked_add(chains as u64).is_none() {
        return Err(Error::invalid(
            "first_chain",
            "first_chain + chains overflow the 64-bit chain index",
        ));
    }
    let comm = comm.duplicate();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    let range = rank_chains(chains, rank, size);
    let n = model.grid().len();
    let t0 = Instant::now();
    // every rank runs (possibly zero) chains; errors are shared so that all
    // ranks return together instead of deadlocking in the next collective
    let count = (range.end - range.start) as usize;
    let mine = RunSpec {
        first_chain: run.first_chain + range.start,
        chains: count,
        ..*run
    };
    let local = if range.is_empty() {
        Ok(None)
    } else if single_thread {
        // MPI_THREAD_SINGLE: no other thread may exist, so run on this one
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build()
            .map_err(|e| Error::invalid("threads", format!("cannot build a thread pool: {e}")))
            .and_then(|pool| pool.install(|| sample(model, cfg, &mine, &mut |_, _| {})))
            .map(Some)
    } else {
        sample(model, cfg, &mine, progress).map(Some)
    };
    let compute_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let failed = local.is_err() as i32;
    let mut any_failed = 0i32;
    comm.all_reduce_into(
        &failed,
        &mut any_failed,
        ::mpi::collective::SystemOperation::max(),
    );
    let local = match (local, any_failed) {
        (Err(e), _) => return Err(e),
        (Ok(_), f) if f != 0 => {
            return Err(Error::invalid(
                "mpi",
                "sampling failed on another rank (see its error)",
            ))
        }
        (Ok(l), _) => l,
    };
    let blocks: Vec<f64> = local
        .as_ref()
        .map(|l| {
            Moments::blocks_of_maps(&l.samples, n)
                .iter()
                .flat_map(|b| b.to_flat())
                .collect()
        })
        .unwrap_or_default();
    let all_blocks = gather(&comm, &blocks);
    let mut flat = vec![0.0f64; 1 + 2 * n];
    if let Some(all) = &all_blocks {
        let parts: Vec<Moments> = all
            .chunks(1 + 2 * n)
            .filter_map(|c| Moments::from_flat(c, n))
            .collect();
        flat = Moments::merge_all(&parts, n).to_flat();
    }
    comm.process_at_rank(0).broadcast_into(&mut flat[..]);
    let moments =
        Moments::from_flat(&flat, n).ok_or_else(|| Error::invalid("mpi", "bad moment buffer"))?;
    // the per-chain scalars always reach rank 0 (cheap); the maps when asked
    let of = |f: &dyn Fn(&SampleSet) -> Vec<f64>| local.as_ref().map(f).unwrap_or_default();
    let chi2 = gather(&comm, &of(&|l| l.chi2.clone()));
    // HMC runs have one acceptance per chain on every rank, others none
    let acceptance =
        gather(&comm, &of(&|l| l.acceptance.clone().unwrap_or_default())).filter(|a| !a.is_empty());
    let (samples, params) = if gather_samples {
        let s = local.as_ref().map(|l| l.samples.as_slice()).unwrap_or(&[]);
        let p = local
            .as_ref()
            .and_then(|l| l.params.as_deref())
            .unwrap_or(&[]);
        // every rank's model has the same parameters, so all or none send some
        (gather(&comm, s), gather(&comm, p).filter(|p| !p.is_empty()))
    } else {
        (None, None)
    };
    let mut max_compute_seconds = 0.0f64;
    comm.all_reduce_into(
        &compute_seconds,
        &mut max_compute_seconds,
        ::mpi::collective::SystemOperation::max(),
    );
    let local_nfe = local.as_ref().map_or(0, |l| l.nfe);
    let mut nfe = 0u64;
    comm.all_reduce_into(
        &local_nfe,
        &mut nfe,
        ::mpi::collective::SystemOperation::max(),
    );
    let local_inner = local.as_ref().map_or(0, |l| l.inner_iterations);
    let mut inner_iterations = 0u64;
    comm.all_reduce_into(
        &local_inner,
        &mut inner_iterations,
        ::mpi::collective::SystemOperation::sum(),
    );
    let comm_seconds = t1.elapsed().as_secs_f64();
    let seconds = max_compute_seconds + comm_seconds;
    let gathered = samples.zip(chi2.clone()).map(|(samples, chi2)| SampleSet {
        grid: *model.grid(),
        first_chain: run.first_chain,
        samples,
        params,
        chi2,
        acceptance: acceptance.clone(),
        nfe,
        inner_iterations,
        seconds,
    });
    Ok(DistributedRun {
        local,
        moments,
        gathered,
        chains,
        chi2,
        acceptance,
        nfe,
        inner_iterations,
        compute_seconds,
        comm_seconds,
        max_compute_seconds,
        ranks: size,
    })
}
