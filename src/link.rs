//! The connection to Redis, direct or through Sentinel (SPEC §5): URLs, the password, the
//! cached command connection, pub/sub connections and PING. It knows nothing of keys or
//! scripts; those are the [`store`](crate::store)'s.
//!
//! `redis://…` / `redis+unix://…`: one [`CommandWire`] (RESP2, read and written here), made
//! again for the next command after it breaks; TLS and RESP3 URLs get redis-rs's
//! `ConnectionManager` instead, which reconnects by itself.
//! `redis+sentinel://H:P[,H:P…]/SERVICE`: the primary's address is asked from the Sentinels
//! (`SENTINEL get-master-addr-by-name`); when a command fails in a way that means the primary
//! is gone or demoted (I/O error, timeout, `READONLY`), the cached connection is dropped and the
//! next command asks the Sentinels again, so a failover is followed without a restart.
//! Meanwhile commands fail and clients hear `unavailable`: nothing is lost.
//! `redis+cluster://H:P[,H:P…]`: one redis-rs `ClusterConnection` (RESP3), which routes each
//! command by its key's slot, follows `MOVED`/`ASK` and refreshes the slot map after a
//! failover; sharded pub/sub arrives on it as pushes ([`Link::take_cluster_pushes`]).

use crate::command_wire::CommandWire;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisError, RedisFuture, RedisResult, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Environment variable through which chatctl hands a worker the Redis password, so that it
/// never appears in a command line (`ps` shows those to every user).
pub const PASSWORD_ENV: &str = "CHAT_REDIS_PASSWORD";

/// A Redis client for `url`, with `password` (when given) replacing any in the URL.
pub fn redis_client(url: &str, password: Option<&str>) -> RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let info = match password {
        Some(pw) if !pw.is_empty() => {
            let settings = info.redis_settings().clone().set_password(pw);
            info.set_redis_settings(settings)
        }
        _ => info,
    };
    redis::Client::open(info)
}

/// `url` with any password replaced by `***`, for logs and `status`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.split_once('@') {
        Some((cred, host)) if !cred.contains('/') => match cred.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        _ => rest.to_owned(),
    };
    let rest = match rest.split_once("pass=") {
        Some((before, after)) => {
            let tail = after
                .split_once('&')
                .map(|(_, t)| format!("&{t}"))
                .unwrap_or_default();
            format!("{before}pass=***{tail}")
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A URL redis-rs understands.
    Direct(String),
    /// Seed nodes of a Redis Cluster (`redis://H:P` each), and any password in the URL.
    Cluster {
        seeds: Vec<String>,
        password: Option<String>,
    },
    /// Sentinels to ask for the primary of `service`.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        /// Extra query (e.g. `db=1`) kept for the primary's URL.
        db: Option<String>,
    },
}

impl Target {
    /// Parses `redis+sentinel://H:P[,H:P…]/SERVICE`, `redis+cluster://[:PASSWORD@]H:P[,H:P…]`
    /// or any other Redis URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            return parse_cluster(url, rest);
        }
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            return Ok(Target::Direct(url.to_owned()));
        };
        let (hosts, service) = rest.split_once('/').ok_or_else(|| {
            format!("{url}: a Sentinel URL ends in /SERVICE (the name Sentinel monitors)")
        })?;
        let (service, db) = match service.split_once('?') {
            Some((s, q)) => (s, Some(q.to_owned())),
            None => (service, None),
        };
        if service.is_empty() {
            return Err(format!("{url}: the service name after the last / is empty"));
        }
        let sentinels = host_ports(url, hosts)?;
        if sentinels.is_empty() {
            return Err(format!("{url}: no Sentinel address"));
        }
        Ok(Target::Sentinel {
            sentinels,
            service: service.to_owned(),
            db,
        })
    }
}

/// `HOST:PORT` pairs separated by commas, as Sentinel and Cluster URLs list them.
fn host_ports(url: &str, hosts: &str) -> Result<Vec<(String, u16)>, String> {
    hosts
        .split(',')
        .map(|hp| {
            let (h, p) = hp
                .rsplit_once(':')
                .ok_or_else(|| format!("{url}: {hp:?} is not HOST:PORT"))?;
            let port = p
                .parse()
                .map_err(|_| format!("{url}: bad port in {hp:?}"))?;
            if h.is_empty() {
                return Err(format!("{url}: {hp:?} has no host"));
            }
            Ok((h.trim_matches(['[', ']']).to_owned(), port))
        })
        .collect()
}

fn parse_cluster(url: &str, rest: &str) -> Result<Target, String> {
    let rest = rest.trim_end_matches('/');
    let (password, hosts) = match rest.rsplit_once('@') {
        Some((cred, hosts)) => {
            let pw = cred.split_once(':').map(|(_, pw)| pw).unwrap_or(cred);
            (Some(pw.to_owned()).filter(|p| !p.is_empty()), hosts)
        }
        None => (None, rest),
    };
    if hosts.contains(['/', '?']) {
        return Err(format!(
            "{}: a cluster URL is redis+cluster://HOST:PORT[,HOST:PORT…] (no database or path: a cluster has only db 0)",
            redact_url(url)
        ));
    }
    let seeds = host_ports(url, hosts)?
        .into_iter()
        .map(|(h, p)| {
            if h.contains(':') {
                format!("redis://[{h}]:{p}")
            } else {
                format!("redis://{h}:{p}")
            }
        })
        .collect::<Vec<_>>();
    if seeds.is_empty() {
        return Err(format!("{url}: no cluster node"));
    }
    Ok(Target::Cluster { seeds, password })
}

/// A Redis Cluster connection and the sharded pub/sub messages it receives.
struct ClusterLink {
    client: redis::cluster::ClusterClient,
    /// Made on first use; redis-rs follows MOVED/ASK and refreshes the slot map by itself.
    con: tokio::sync::Mutex<Option<redis::cluster_async::ClusterConnection>>,
    /// When the connection was last thrown away as wedged (see [`Link::cluster_call`]).
    reset_at: Mutex<Option<Instant>>,
    /// Pushes (sharded messages, (re)subscription confirmations) of every node, taken once by
    /// the delivery subscriber.
    pushes: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>>>,
}

/// One node of a Redis Cluster, as `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterNode {
    /// `HOST:PORT`.
    pub addr: String,
    /// `primary` or `replica`.
    pub role: String,
    /// Not flagged failing and its link connected.
    pub up: bool,
    /// Slot ranges a primary serves (`0-5460`), empty for replicas.
    pub slots: Vec<String>,
}

/// Parses `CLUSTER NODES` output.
pub fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    let mut nodes: Vec<ClusterNode> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            // `ip:port@cport[,hostname]`
            let addr = f[1].split(['@', ',']).next().unwrap_or(f[1]).to_owned();
            let flags: Vec<&str> = f[2].split(',').collect();
            let role = if flags.contains(&"master") {
                "primary"
            } else {
                "replica"
            };
            let failing = flags
                .iter()
                .any(|fl| matches!(*fl, "fail" | "fail?" | "handshake" | "noaddr"));
            Some(ClusterNode {
                addr,
                role: role.to_owned(),
                up: !failing && f[7] == "connected",
                slots: f[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .map(|s| s.to_string())
                    .collect(),
            })
        })
        .collect();
    nodes.sort_by(|a, b| a.addr.cmp(&b.addr));
    nodes
}

/// The shared link: resolves, caches and invalidates the connection.
pub struct Link {
    target: Target,
    /// Replaces any password in the URL (it comes from [`PASSWORD_ENV`] or `chat.toml`).
    password: Option<String>,
    /// Bounds connecting, each reply, each Sentinel question and [`Link::ping`].
    timeout: Duration,
    /// The cached command connection; `None` until first use and after the primary is gone.
    current: Mutex<Option<Commands>>,
    /// Held while a command connection is made, so that calls arriving meanwhile wait for
    /// it instead of each making their own.
    connecting: tokio::sync::Mutex<()>,
    /// With a cluster URL: the cluster connection instead of `current`.
    cluster: Option<ClusterLink>,
}

/// The command connection: ours, or redis-rs's for what ours does not speak.
#[derive(Clone)]
enum Commands {
    Wire(CommandWire),
    Manager(ConnectionManager),
}

impl Commands {
    async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Commands::Wire(w) => w.query(cmd).await,
            Commands::Manager(m) => m.req_packed_command(cmd).await,
        }
    }

    async fn query_pipeline(
        &mut self,
        pipeline: &redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Commands::Wire(w) => w.query_pipeline(pipeline, offset, count).await,
            Commands::Manager(m) => m.req_packed_commands(pipeline, offset, count).await,
        }
    }
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

impl Link {
    /// A link to `url` (checked here, connected lazily on first use).
    pub fn new(
        url: &str,
        password: Option<String>,
        timeout: Duration,
    ) -> Result<Arc<Link>, String> {
        let target = Target::parse(url)?;
        if let Target::Direct(u) = &target {
            redis_client(u, password.as_deref())
                .map_err(|e| format!("bad Redis URL {}: {e}", redact_url(u)))?;
        }
        let cluster = match &target {
            Target::Cluster {
                seeds,
                password: url_password,
            } => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                    // RESP3: sharded pub/sub messages arrive as pushes on the command
                    // connections, and redis-rs re-subscribes them after reconnects and slot
                    // moves.
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // A few quick retries follow MOVED/ASK and a promotion; the store's own
                    // timeout bounds the whole call anyway.
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(500);
                if let Some(pw) = password.as_deref().or(url_password.as_deref()) {
                    if !pw.is_empty() {
                        builder = builder.password(pw);
                    }
                }
                let client = builder
                    .build()
                    .map_err(|e| format!("bad Redis Cluster URL {}: {e}", redact_url(url)))?;
                Some(ClusterLink {
                    client,
                    con: tokio::sync::Mutex::new(None),
                    reset_at: Mutex::new(None),
                    pushes: Mutex::new(Some(rx)),
                })
            }
            _ => None,
        };
        Ok(Arc::new(Link {
            target,
            password,
            timeout,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            cluster,
        }))
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The cluster connection, made on first use.
    async fn cluster_connection(
        &self,
        cluster: &ClusterLink,
    ) -> RedisResult<redis::cluster_async::ClusterConnection> {
        let mut con = cluster.con.lock().await;
        if let Some(c) = con.as_ref() {
            return Ok(c.clone());
        }
        let c = match tokio::time::timeout(self.timeout * 2, cluster.client.get_async_connection())
            .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no Redis Cluster node answered",
                )))
            }
        };
        *con = Some(c.clone());
        Ok(c)
    }

    /// Runs one call on the cluster connection, bounded by nine tenths of the link's timeout
    /// (so it fires before the store's). redis-rs's cluster client can wedge while it recovers
    /// from a failover (every call then times out for good; seen here after a primary's
    /// SIGKILL and restart), so a call that times out throws the connection away, at most
    /// every 2 s, and the next call makes a fresh one: it reads the slot map anew, and the
    /// delivery subscriber's check subscribes again on it. Pushes keep arriving on the same
    /// receiver (the client hands every connection it makes the same push sender).
    async fn cluster_call<T, F>(
        &self,
        cluster: &ClusterLink,
        call: impl FnOnce(redis::cluster_async::ClusterConnection) -> F,
    ) -> RedisResult<T>
    where
        F: std::future::Future<Output = RedisResult<T>>,
    {
        let con = self.cluster_connection(cluster).await?;
        match tokio::time::timeout(self.timeout * 9 / 10, call(con)).await {
            Ok(r) => r,
            Err(_) => {
                let now = Instant::now();
                let stale = {
                    let mut at = cluster.reset_at.lock().unwrap_or_else(|e| e.into_inner());
                    let stale = at.is_none_or(|t| now.duration_since(t) > Duration::from_secs(2));
                    if stale {
                        *at = Some(now);
                    }
                    stale
                };
                if stale {
                    tracing::warn!("Redis Cluster call timed out; reconnecting to the cluster");
                    *cluster.con.lock().await = None;
                }
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "Redis Cluster call timed out",
                )))
            }
        }
    }

    /// Sends `cmd` to the primary that serves `key`'s slot (cluster only): `WAIT` must reach
    /// the primary that took the write, and `PUBSUB SHARDNUMSUB` the shard of the channel.
    pub async fn on_primary_of(&self, key: &str, cmd: Cmd) -> RedisResult<Value> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let Some(cluster) = &self.cluster else {
            let mut c = self.commands().await?;
            return c.query(&cmd).await;
        };
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
            key.as_bytes(),
            SlotAddr::Master,
        )));
        self.cluster_call(cluster, move |mut con| async move {
            con.route_command(cmd, route).await
        })
        .await
    }

    /// Takes the receiver of the cluster's push messages (sharded pub/sub); `None` when not a
    /// cluster or already taken.
    pub fn take_cluster_pushes(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>> {
        self.cluster
            .as_ref()?
            .pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// `SSUBSCRIBE channel` on the shard that owns it (cluster only).
    pub async fn ssubscribe(&self, channel: &str) -> RedisResult<()> {
        let Some(cluster) = &self.cluster else {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "sharded pub/sub needs a cluster URL",
            )));
        };
        let channel = channel.to_owned();
        self.cluster_call(cluster, move |mut con| async move {
            con.ssubscribe(channel).await
        })
        .await
    }

    /// The cluster's nodes, their roles and whether each is up (`CLUSTER NODES` from any
    /// node); `None` when not a cluster or no node answered.
    pub async fn cluster_nodes(&self) -> Option<Vec<ClusterNode>> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let cluster = self.cluster.as_ref()?;
        let ask = async {
            let mut con = self.cluster_connection(cluster).await.ok()?;
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("NODES");
            let v = con
                .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                .await
                .ok()?;
            let text: String = redis::from_redis_value(v).ok()?;
            Some(parse_cluster_nodes(&text))
        };
        tokio::time::timeout(self.timeout, ask).await.ok().flatten()
    }

    /// Whether the primary is found through Sentinels (and may move).
    pub fn is_sentinel(&self) -> bool {
        matches!(self.target, Target::Sentinel { .. })
    }

    /// Asks the Sentinels, in order, for the primary's address.
    async fn resolve_primary(&self) -> RedisResult<String> {
        let Target::Sentinel {
            sentinels,
            service,
            db,
        } = &self.target
        else {
            unreachable!("only called for Sentinel targets")
        };
        let mut last_err = None;
        for (host, port) in sentinels {
            let ask = async {
                let client = redis::Client::open(format!("redis://{host}:{port}"))?;
                let mut con = client.get_multiplexed_async_connection().await?;
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(service)
                    .query_async(&mut con)
                    .await?;
                Ok::<_, RedisError>(addr)
            };
            match tokio::time::timeout(self.timeout, ask).await {
                Ok(Ok(Some((h, p)))) => {
                    let query = db.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
                    return Ok(format!("redis://{h}:{p}{query}"));
                }
                Ok(Ok(None)) => {
                    last_err = Some(RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "Sentinel does not know the service",
                        service.clone(),
                    )))
                }
                Ok(Err(e)) => last_err = Some(e),
                Err(_) => {
                    last_err = Some(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "Sentinel did not answer",
                    )))
                }
            }
        }
        Err(last_err.unwrap_or_else(|| {
            RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Sentinel"))
        }))
    }

    /// A client for the current primary (for pub/sub connections).
    pub async fn client(&self) -> RedisResult<redis::Client> {
        let url = match &self.target {
            Target::Direct(u) => u.clone(),
            Target::Sentinel { .. } => self.resolve_primary().await?,
            Target::Cluster { seeds, .. } => seeds.first().cloned().unwrap_or_default(),
        };
        redis_client(&url, self.password.as_deref())
    }

    /// A pub/sub connection to the current primary, subscribed to `channel`.
    pub async fn subscribe(&self, channel: &str) -> RedisResult<crate::subscription::Subscription> {
        crate::subscription::Subscription::open(&self.client().await?, channel).await
    }

    /// The round-trip time of a PING on a fresh connection to the current primary, or `None`
    /// when Redis did not answer within the link's timeout. The connection is made before
    /// the clock starts, so the figure is the round trip alone.
    pub async fn ping(&self) -> Option<Duration> {
        if let Some(cluster) = &self.cluster {
            let attempt = async {
                let mut con = self.cluster_connection(cluster).await.ok()?;
                let t = Instant::now();
                let _: String = redis::cmd("PING").query_async(&mut con).await.ok()?;
                Some(t.elapsed())
            };
            return tokio::time::timeout(self.timeout, attempt)
                .await
                .ok()
                .flatten();
        }
        let attempt = async {
            let client = self.client().await.ok()?;
            let mut con = client.get_multiplexed_async_connection().await.ok()?;
            let t = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut con).await.ok()?;
            Some(t.elapsed())
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .ok()
            .flatten()
    }

    /// The command connection, made (after resolving the primary, with Sentinel) when there
    /// is none or ours broke.
    async fn commands(&self) -> RedisResult<Commands> {
        if let Some(c) = self.cached_commands() {
            return Ok(c);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(c) = self.cached_commands() {
            return Ok(c);
        }
        let client = self.client().await?;
        let c = match CommandWire::connect(client.get_connection_info(), self.timeout).await? {
            Some(wire) => Commands::Wire(wire),
            None => Commands::Manager(ConnectionManager::new_lazy_with_config(
                client,
                manager_config(self.timeout),
            )?),
        };
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    fn cached_commands(&self) -> Option<Commands> {
        match &*self.current.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(Commands::Wire(w)) if w.is_broken() => None,
            current => current.clone(),
        }
    }

    /// After an error: with Sentinel, forget the primary so the next call asks again.
    fn on_error(&self, e: &RedisError) {
        let primary_gone = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if self.is_sentinel() && primary_gone {
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// A [`ConnectionLike`] over a [`Link`], for the [`Store`](crate::store::Store).
#[derive(Clone)]
pub struct LinkConnection(pub Arc<Link>);

impl ConnectionLike for LinkConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            if let Some(cluster) = &self.0.cluster {
                return self
                    .0
                    .cluster_call(cluster, |mut con| async move {
                        con.req_packed_command(cmd).await
                    })
                    .await;
            }
            let mut c = self.0.commands().await?;
            let r = c.query(cmd).await;
            if let Err(e) = &r {
                self.0.on_error(e);
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            if let Some(cluster) = &self.0.cluster {
                return self
                    .0
                    .cluster_call(cluster, |mut con| async move {
                        con.req_packed_commands(cmd, offset, count).await
                    })
                    .await;
            }
            let mut c = self.0.commands().await?;
            let r = c.query_pipeline(cmd, offset, count).await;
            if let Err(e) = &r {
                self.0.on_error(e);
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(
            redact_url("redis+unix:///s/redis.sock?pass=x&db=0"),
            "redis+unix:///s/redis.sock?pass=***&db=0"
        );
    }

    #[tokio::test]
    async fn ping_gives_up_within_the_timeout() {
        // A listener that accepts (into its backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        let link = Link::new(&url, None, Duration::from_millis(300)).unwrap();
        let t = Instant::now();
        assert_eq!(link.ping().await, None);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn ping_measures_a_real_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("redis.sock");
        let mut redis = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let link = Link::new(
            &format!("redis+unix://{}", sock.display()),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let rtt = loop {
            if let Some(rtt) = link.ping().await {
                break Some(rtt);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let _ = redis.kill();
        let _ = redis.wait();
        let rtt = rtt.expect("PING answered within 10 s");
        assert!(rtt < Duration::from_secs(2), "{rtt:?}");
    }

    #[test]
    fn parses_sentinel_urls() {
        assert_eq!(
            Target::parse("redis+sentinel://a:26379,b:26380/mymaster").unwrap(),
            Target::Sentinel {
                sentinels: vec![("a".into(), 26379), ("b".into(), 26380)],
                service: "mymaster".into(),
                db: None,
            }
        );
        assert_eq!(
            Target::parse("redis://h:1").unwrap(),
            Target::Direct("redis://h:1".into())
        );
        assert!(Target::parse("redis+sentinel://a:1").is_err());
        assert!(Target::parse("redis+sentinel://a/x").is_err());
        assert!(Target::parse("redis+sentinel://a:1/").is_err());
    }

    #[test]
    fn parses_cluster_urls() {
        assert_eq!(
            Target::parse("redis+cluster://a:7000,127.0.0.1:7001").unwrap(),
            Target::Cluster {
                seeds: vec!["redis://a:7000".into(), "redis://127.0.0.1:7001".into()],
                password: None,
            }
        );
        assert_eq!(
            Target::parse("redis+cluster://:s3cret@a:7000").unwrap(),
            Target::Cluster {
                seeds: vec!["redis://a:7000".into()],
                password: Some("s3cret".into()),
            }
        );
        assert!(Target::parse("redis+cluster://a").is_err());
        assert!(Target::parse("redis+cluster://a:1/0").is_err());
        assert!(Target::parse("redis+cluster://:9").is_err());
    }

    #[test]
    fn reads_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1 5 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
67ed 127.0.0.1:30002@40002 master,fail - 1 1 2 disconnected 5461-10922
";
        let nodes = parse_cluster_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].addr, "127.0.0.1:30001");
        assert_eq!(nodes[0].role, "primary");
        assert!(nodes[0].up);
        assert_eq!(nodes[0].slots, vec!["0-5460".to_string()]);
        assert_eq!(nodes[1].addr, "127.0.0.1:30002");
        assert!(!nodes[1].up);
        assert_eq!(nodes[2].role, "replica");
        assert!(nodes[2].slots.is_empty());
    }
}
