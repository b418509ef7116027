//! The connection to Redis, direct or through Sentinel (SPEC §5): URLs, the password, the
//! cached command connection, pub/sub connections and PING. It knows nothing of keys or
//! scripts; those are the [`store`](crate::store)'s.
//!
//! `redis://…` / `redis+unix://…`: one `ConnectionManager`, which reconnects by itself.
//! `redis+sentinel://H:P[,H:P…]/SERVICE`: the primary's address is asked from the Sentinels
//! (`SENTINEL get-master-addr-by-name`); when a command fails in a way that means the primary
//! is gone or demoted (I/O error, timeout, `READONLY`), the cached connection is dropped and the
//! next command asks the Sentinels again, so a failover is followed without a restart.
//! Meanwhile commands fail and clients hear `unavailable`: nothing is lost.

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
    /// Sentinels to ask for the primary of `service`.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        /// Extra query (e.g. `db=1`) kept for the primary's URL.
        db: Option<String>,
    },
}

impl Target {
    /// Parses `redis+sentinel://H:P[,H:P…]/SERVICE` or any other Redis URL.
    pub fn parse(url: &str) -> Result<Target, String> {
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
        let sentinels = hosts
            .split(',')
            .map(|hp| {
                let (h, p) = hp
                    .rsplit_once(':')
                    .ok_or_else(|| format!("{url}: {hp:?} is not HOST:PORT"))?;
                let port = p
                    .parse()
                    .map_err(|_| format!("{url}: bad port in {hp:?}"))?;
                Ok((h.trim_matches(['[', ']']).to_owned(), port))
            })
            .collect::<Result<Vec<_>, String>>()?;
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

/// The shared link: resolves, caches and invalidates the connection.
pub struct Link {
    target: Target,
    /// Replaces any password in the URL (it comes from [`PASSWORD_ENV`] or `chat.toml`).
    password: Option<String>,
    /// Bounds connecting, each reply, each Sentinel question and [`Link::ping`].
    timeout: Duration,
    /// The cached command connection; `None` until first use and after the primary is gone.
    current: Mutex<Option<ConnectionManager>>,
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
        Ok(Arc::new(Link {
            target,
            password,
            timeout,
            current: Mutex::new(None),
        }))
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
        };
        redis_client(&url, self.password.as_deref())
    }

    /// A pub/sub connection to the current primary, subscribed to `channel`.
    pub async fn subscribe(&self, channel: &str) -> RedisResult<redis::aio::PubSub> {
        let mut pubsub = self.client().await?.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    }

    /// The round-trip time of a PING on a fresh connection to the current primary, or `None`
    /// when Redis did not answer within the link's timeout. The connection is made before
    /// the clock starts, so the figure is the round trip alone.
    pub async fn ping(&self) -> Option<Duration> {
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

    /// The command connection, resolving the primary first when needed.
    pub async fn manager(&self) -> RedisResult<ConnectionManager> {
        if let Some(m) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(m);
        }
        let client = self.client().await?;
        let m = ConnectionManager::new_lazy_with_config(client, manager_config(self.timeout))?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(m.clone());
        Ok(m)
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
            let mut m = self.0.manager().await?;
            let r = m.req_packed_command(cmd).await;
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
            let mut m = self.0.manager().await?;
            let r = m.req_packed_commands(cmd, offset, count).await;
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
}
