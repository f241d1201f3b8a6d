//! A deterministic synthetic policy: `servers` servers, each with `per_server`
//! inbound intents from distinct clients, each intent one HTTP rule (exact and
//! prefix paths alternating), and requests of which half are allowed.

use ibac_model::http::{Method, PathPattern, RequestMethod, normalize};
use ibac_model::{
    CallTarget, ClientIntents, Document, Format, HttpRule, Location, Meta, Namespace, Target,
    TargetKind, WorkloadId, WorkloadRef,
};

/// One generated rule: `client` may call `server` with `methods` on `path`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub client: usize,
    pub server: usize,
    /// The exact path, or the prefix (ending in `/`).
    pub path: String,
    pub exact: bool,
    pub methods: Vec<Method>,
}

/// The generated policy.
pub struct Spec {
    pub servers: usize,
    pub rules: Vec<Rule>,
    /// For each server, its rules' indexes.
    pub by_server: Vec<Vec<usize>>,
}

pub fn server_name(s: usize) -> String {
    format!("svc-{s}.bench")
}

pub fn client_name(c: usize) -> String {
    format!("app-{c}.bench")
}

impl Spec {
    pub fn generate(servers: usize, per_server: usize) -> Spec {
        let pool = servers.max(per_server);
        let mut rules = Vec::with_capacity(servers * per_server);
        let mut by_server = vec![Vec::new(); servers];
        for (s, list) in by_server.iter_mut().enumerate() {
            for k in 0..per_server {
                let exact = k % 2 == 0;
                list.push(rules.len());
                rules.push(Rule {
                    client: (s * 7 + k) % pool,
                    server: s,
                    path: if exact {
                        format!("/api/s{s}/r{k}")
                    } else {
                        format!("/api/s{s}/p{k}/")
                    },
                    exact,
                    methods: if k % 3 == 0 {
                        vec![Method::Get, Method::Post]
                    } else {
                        vec![Method::Get]
                    },
                });
            }
        }
        Spec {
            servers,
            rules,
            by_server,
        }
    }
}

/// One request with the answer every engine must give.
#[derive(Clone, Debug)]
pub struct Req {
    pub client: WorkloadId,
    pub server: WorkloadId,
    pub method: &'static str,
    pub path: String,
    pub ibac: ibac_policy::Request,
    pub allowed: bool,
}

/// A small deterministic generator (xorshift64*), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `count` requests to the first `servers` servers, alternately allowed and not.
pub fn requests(spec: &Spec, count: usize, servers: usize, seed: u64) -> anyhow::Result<Vec<Req>> {
    let mut rng = Rng(seed | 1);
    (0..count)
        .map(|i| {
            let s = rng.below(servers.clamp(1, spec.servers));
            let rule = &spec.rules[spec.by_server[s][rng.below(spec.by_server[s].len())]];
            let allowed = i % 2 == 0;
            let matching = if rule.exact {
                rule.path.clone()
            } else {
                format!("{}item/{}", rule.path, rng.below(1000))
            };
            let (method, path) = match (allowed, i % 4) {
                (true, _) => ("GET", matching),
                (false, 1) => ("DELETE", matching),
                (false, _) => ("GET", format!("/api/s{s}/other/{}", rng.below(1000))),
            };
            let normalized = normalize(&path)?;
            let method_parsed =
                RequestMethod::parse(method).ok_or_else(|| anyhow::anyhow!("bad method"))?;
            Ok(Req {
                client: WorkloadId::parse(&client_name(rule.client))?,
                server: WorkloadId::parse(&server_name(s))?,
                method,
                ibac: ibac_policy::Request::http(Some(8080), method_parsed, normalized),
                path,
                allowed,
            })
        })
        .collect()
}

/// The policy as ClientIntents documents, one per client.
pub fn documents(spec: &Spec) -> anyhow::Result<Vec<Document>> {
    let mut by_client: std::collections::BTreeMap<usize, Vec<&Rule>> = Default::default();
    for rule in &spec.rules {
        by_client.entry(rule.client).or_default().push(rule);
    }
    let at = Location::new("bench.yaml".into(), 1, 1);
    let ns = Namespace::parse("bench")?;
    by_client
        .into_iter()
        .map(|(client, rules)| {
            let id = WorkloadId::parse(&client_name(client))?;
            let targets = rules
                .iter()
                .map(|r| {
                    let pattern = if r.exact {
                        r.path.clone()
                    } else {
                        format!("{}*", r.path)
                    };
                    Ok(Target {
                        at: at.clone(),
                        kind: TargetKind::Workload(CallTarget {
                            id: WorkloadId::parse(&server_name(r.server))?,
                            kind: None,
                            ports: Vec::new(),
                            http: vec![HttpRule {
                                at: at.clone(),
                                path: PathPattern::parse(&pattern)?,
                                methods: r.methods.clone(),
                            }],
                        }),
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(Document::ClientIntents(ClientIntents {
                meta: Meta {
                    name: id.name().to_string(),
                    namespace: ns.clone(),
                    origin: at.clone(),
                    format: Format::IbacV1,
                    namespace_given: true,
                },
                workload: WorkloadRef { id, kind: None },
                targets,
            }))
        })
        .collect()
}
