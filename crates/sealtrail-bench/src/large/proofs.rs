//! Inclusion and consistency proofs over HTTP, each verified against the signed checkpoint.

use super::*;

// --- proofs -------------------------------------------------------------------------------

/// The log's latest signed checkpoint, opened with the log's key and checked against the
/// stored hashes.
#[derive(Debug, Clone)]
pub struct SignedTree {
    pub size: u64,
    pub root: Hash,
    /// Earlier signed checkpoints whose roots the stored hashes were also checked against.
    pub earlier_checked: usize,
}

/// `GET /v1/log/checkpoint` and `GET /v1/log/key`.
pub async fn fetch_signed_tree(endpoint: &Endpoint) -> Result<(String, String)> {
    let mut connection = Connection::open(endpoint.addr, &endpoint.log_token).await?;
    let note = get_text(&mut connection, "/v1/log/checkpoint").await?;
    let key = get_text(&mut connection, "/v1/log/key").await?;
    Ok((note, key))
}

pub(super) async fn get_text(connection: &mut Connection, path: &str) -> Result<String> {
    let (status, body) = connection.get(path).await?;
    ensure!(
        status.is_success(),
        "GET {path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    String::from_utf8(body.to_vec()).with_context(|| format!("GET {path} answered no text"))
}

/// Opens the served checkpoint `note` with the log's key — which must be the key the served
/// `key` names and the one found next to the data (`verify::log_keys`) — and checks
/// the root of the stored hashes at its size, and at the sizes of earlier checkpoints, against
/// the signed roots. The stored hashes then give trustworthy old roots for consistency proofs.
pub fn check_signed_tree(
    store: &dyn Store,
    data_dir: &Path,
    note: &str,
    key: &str,
) -> Result<SignedTree> {
    let record = store
        .tenant(TENANT)?
        .with_context(|| format!("no tenant {TENANT} in the store"))?;
    let keys = sealtrail_server::verify::log_keys(data_dir, &record)?;
    let served = VerifierKey::parse(key.trim_end())
        .map_err(|e| anyhow!("GET /v1/log/key answered no verifier key: {e}"))?;
    ensure!(
        served == keys.key,
        "GET /v1/log/key answered {served}, but the log's key is {}",
        keys.key
    );
    let checkpoint = Checkpoint::open(note.as_bytes(), &keys.key)
        .map_err(|e| anyhow!("the served checkpoint does not open with the log's key: {e}"))?;
    let hashes = StoreHashes {
        store,
        tenant: TENANT,
    };
    let stored_root = |size: u64| {
        merkle::tree_hash(size, &hashes).map_err(|e| {
            anyhow!("cannot compute the root of size {size} from the stored hashes: {e}")
        })
    };
    ensure!(
        stored_root(checkpoint.size)? == checkpoint.root,
        "the stored hashes give another root for size {} than the signed checkpoint",
        checkpoint.size
    );
    let earlier = store.checkpoints(TENANT)?;
    let step = earlier.len().div_ceil(EARLIER_CHECKPOINTS).max(1);
    let mut earlier_checked = 0;
    for note in earlier.iter().step_by(step) {
        let old = Checkpoint::open(note.as_bytes(), &keys.key)
            .map_err(|e| anyhow!("a stored checkpoint does not open with the log's key: {e}"))?;
        ensure!(
            stored_root(old.size)? == old.root,
            "the stored hashes give another root for size {} than its signed checkpoint",
            old.size
        );
        earlier_checked += 1;
    }
    Ok(SignedTree {
        size: checkpoint.size,
        root: checkpoint.root,
        earlier_checked,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    Inclusion,
    Consistency,
}

impl ProofKind {
    fn path(self, param: u64, size: u64) -> String {
        match self {
            ProofKind::Inclusion => format!("/v1/log/proof/inclusion?seq={param}&size={size}"),
            ProofKind::Consistency => {
                format!("/v1/log/proof/consistency?from={param}&to={size}")
            }
        }
    }
}

/// What the proof clients did.
#[derive(Debug, Clone)]
pub struct ProofRun {
    pub latencies: Latencies,
    pub requests: usize,
    pub clients: usize,
    pub elapsed: Duration,
    /// Answers kept to verify: the seq (inclusion) or old size (consistency) asked, and the
    /// body.
    pub samples: Vec<(u64, Bytes)>,
    /// The CPU time serve used while they ran, in seconds, where the caller could read it.
    pub serve_cpu: Option<f64>,
}

/// `requests` proofs of `kind` into the tree of `size`, from `clients` concurrent clients:
/// inclusion of a random seq below `size`, or consistency from a random size from 1 to `size`.
/// About `verify_at_most` answers, spread over the run, are kept to verify.
pub async fn request_proofs(
    endpoint: &Endpoint,
    kind: ProofKind,
    size: u64,
    requests: usize,
    clients: usize,
    verify_at_most: usize,
    seed: u64,
) -> Result<ProofRun> {
    ensure!(size > 0 && clients > 0, "no tree to prove or no clients");
    let keep_every = requests.div_ceil(verify_at_most.max(1)).max(1);
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(endpoint.addr, &endpoint.log_token).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, mut connection) in connections.into_iter().enumerate() {
        let count = requests / clients + usize::from(client < requests % clients);
        let mut rng = Rng::new(seed ^ ((kind as u64 + 1) << 40) ^ ((client as u64 + 1) * 7919));
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            let mut samples = Vec::new();
            for i in 0..count {
                let param = match kind {
                    ProofKind::Inclusion => rng.below(size),
                    ProofKind::Consistency => 1 + rng.below(size),
                };
                let path = kind.path(param, size);
                let sent = Instant::now();
                let (status, body) = connection.get(&path).await?;
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !status.is_success() {
                    bail!(
                        "GET {path} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                if (i * clients + client).is_multiple_of(keep_every) {
                    samples.push((param, body));
                }
            }
            Ok::<_, anyhow::Error>((latencies, samples))
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut samples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (l, s) = joined.context("a proof client panicked")??;
        latencies.extend(l);
        samples.extend(s);
    }
    Ok(ProofRun {
        latencies: Latencies::from_micros(latencies),
        requests,
        clients,
        elapsed: started.elapsed(),
        samples,
        serve_cpu: None,
    })
}

#[derive(Deserialize)]
pub(super) struct InclusionAnswer {
    pub(super) leaf_index: u64,
    pub(super) tree_size: u64,
    pub(super) proof: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct ConsistencyAnswer {
    pub(super) from: u64,
    pub(super) to: u64,
    pub(super) proof: Vec<String>,
}

pub(super) fn proof_hashes(proof: &[String]) -> Result<Vec<Hash>> {
    proof
        .iter()
        .map(|h| Hash::from_hex(h).map_err(|e| anyhow!("proof hash {h:?} is not hex: {e}")))
        .collect()
}

/// How many proofs were verified, and their hashes in all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verified {
    pub proofs: usize,
    pub hashes: usize,
}

/// Verifies kept answers against the signed tree: inclusion with the leaf hash of the stored
/// entry, consistency with the old root from the stored hashes (checked by
/// [`check_signed_tree`]). Fails on the first that does not verify.
pub fn verify_proofs(
    store: &dyn Store,
    tree: &SignedTree,
    kind: ProofKind,
    samples: &[(u64, Bytes)],
) -> Result<Verified> {
    let hashes = StoreHashes {
        store,
        tenant: TENANT,
    };
    let mut verified = Verified::default();
    for (param, body) in samples {
        let path = kind.path(*param, tree.size);
        match kind {
            ProofKind::Inclusion => {
                let answer: InclusionAnswer = serde_json::from_slice(body)
                    .with_context(|| format!("GET {path}: not an inclusion proof"))?;
                ensure!(
                    answer.leaf_index == *param && answer.tree_size == tree.size,
                    "GET {path} answered a proof of seq {} in size {}",
                    answer.leaf_index,
                    answer.tree_size
                );
                let entry = store
                    .entry(TENANT, *param)?
                    .with_context(|| format!("no entry at seq {param}"))?;
                let proof = proof_hashes(&answer.proof)?;
                merkle::verify_inclusion(*param, tree.size, &leaf_hash(&entry), &proof, &tree.root)
                    .map_err(|e| anyhow!("GET {path}: the proof does not verify: {e}"))?;
                verified.hashes += proof.len();
            }
            ProofKind::Consistency => {
                let answer: ConsistencyAnswer = serde_json::from_slice(body)
                    .with_context(|| format!("GET {path}: not a consistency proof"))?;
                ensure!(
                    answer.from == *param && answer.to == tree.size,
                    "GET {path} answered a proof from {} to {}",
                    answer.from,
                    answer.to
                );
                let old_root = merkle::tree_hash(*param, &hashes)
                    .map_err(|e| anyhow!("cannot compute the root of size {param}: {e}"))?;
                let proof = proof_hashes(&answer.proof)?;
                merkle::verify_consistency(*param, tree.size, &old_root, &tree.root, &proof)
                    .map_err(|e| anyhow!("GET {path}: the proof does not verify: {e}"))?;
                verified.hashes += proof.len();
            }
        }
        verified.proofs += 1;
    }
    Ok(verified)
}

pub(super) fn proof_figure(
    workload: Workload,
    kind: ProofKind,
    tree: &SignedTree,
    run: &ProofRun,
    verified: &Verified,
) -> Figure {
    let p99 = run.latencies.quantile_ms(0.99).unwrap_or(f64::NAN);
    let mut figure = Figure::new(workload, StoreKind::Embedded, p99, Unit::Milliseconds);
    figure.p50_ms = run.latencies.quantile_ms(0.5);
    figure.p99_ms = run.latencies.quantile_ms(0.99);
    let asked = match kind {
        ProofKind::Inclusion => "inclusion of a random seq",
        ProofKind::Consistency => "consistency from a random size",
    };
    figure.note = format!(
        "{} requests ({asked}) into the tree of the latest checkpoint, size {}, from {} concurrent clients with a log:read token, {:.1} s, max {}; serve's CPU {} per request; {} answers verified against the signed root ({:.1} hashes per proof; the stored hashes agree with it and with {} earlier checkpoints); {}",
        thousands(run.requests as f64),
        thousands(tree.size as f64),
        run.clients,
        run.elapsed.as_secs_f64(),
        run.latencies
            .max_ms()
            .map_or("—".to_string(), |m| format!("{m:.2} ms")),
        run.serve_cpu
            .map_or("not readable".to_string(), |cpu| format!(
                "{:.0} µs",
                cpu * 1e6 / run.requests.max(1) as f64
            )),
        thousands(verified.proofs as f64),
        verified.hashes as f64 / verified.proofs.max(1) as f64,
        tree.earlier_checked,
        EMBEDDED_ONLY,
    );
    figure
}
