//! Connecting to MongoDB: where the URI comes from (`--uri`, `MONGODB_URI`, caas.toml),
//! bounded timeouts so an unreachable server is one clear error, and a round-trip counter
//! (connection checkouts of the driver's pool) so round trips can be measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bson::doc;
use mongodb::event::cmap::CmapEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use mongodb::Client;

use crate::base::error::Error;
use crate::base::redact::redact;
use crate::config::Config;

/// Where to connect, and how long to wait for a server.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    /// MongoDB connection string; when `None`, `[connection] uri` in caas.toml.
    pub uri: Option<String>,
    /// Seconds to wait for a reachable server.
    pub connect_timeout: u64,
}

/// A connected client and the number of commands it has sent.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    commands: Arc<AtomicU64>,
    /// The URI with its password replaced, for messages.
    pub shown_uri: String,
}

impl Connection {
    /// Commands sent so far (round trips): every command, `getMore` and retry checks a
    /// connection out of the pool once (the server monitor's `hello`s use their own).
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }
}

impl ConnectOpts {
    /// The URI to use, or an error that says how to give one.
    pub fn resolve_uri(&self, config: &Config) -> Result<String, Error> {
        self.uri
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| config.connection.uri.clone())
            .ok_or_else(|| {
                Error::Connection("no MongoDB connection string; pass --uri, set MONGODB_URI, or set `[connection] uri` in caas.toml".into())
            })
    }

    /// Connect and check the server answers, within the timeout.
    pub async fn connect(&self, config: &Config) -> Result<Connection, Error> {
        let uri = self.resolve_uri(config)?;
        let conn = connect(&uri, Duration::from_secs(self.connect_timeout.max(1))).await?;
        OPEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn.client.clone());
        Ok(conn)
    }
}

/// Clients the command line opened, closed by [`close_all`] before the process exits.
static OPEN: std::sync::Mutex<Vec<Client>> = std::sync::Mutex::new(Vec::new());

/// End the sessions and close the connections of every client the command line opened,
/// while the runtime still runs. Without this, the last `Client` handle is dropped as the
/// runtime shuts down, and the driver's cleanup task can panic ("SendError") on the way out.
pub async fn close_all() {
    let clients = std::mem::take(&mut *OPEN.lock().unwrap_or_else(|e| e.into_inner()));
    for client in clients {
        let _ = tokio::time::timeout(Duration::from_secs(2), client.shutdown()).await;
    }
}

/// Connect to `uri` and ping it; the error never contains the password.
/// "h1:1, h2:2" when every TCP host refuses a connection outright; None otherwise (any host
/// accepts, is slow, or is not TCP: the driver then decides within its timeout).
async fn all_refused(hosts: &[mongodb::options::ServerAddress]) -> Option<String> {
    let mut refused = Vec::new();
    for h in hosts {
        let mongodb::options::ServerAddress::Tcp { host, port } = h else {
            return None;
        };
        let port = port.unwrap_or(27017);
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        match attempt {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused.push(format!("{host}:{port}"))
            }
            _ => return None,
        }
    }
    (!refused.is_empty()).then(|| refused.join(", "))
}

/// Connect to `uri` and check the server answers within `timeout`; every failure is an
/// [`Error::Connection`] that names the (redacted) URI and the fix.
pub async fn connect(uri: &str, timeout: Duration) -> Result<Connection, Error> {
    open(uri, timeout)
        .await
        .map_err(|e| Error::Connection(format!("{e:#}")))
}

async fn open(uri: &str, timeout: Duration) -> Result<Connection> {
    crate::base::redact::register_uri(uri);
    let shown = redact(uri);
    let mut opts = ClientOptions::parse(uri)
        .await
        .map_err(|e| {
            anyhow!(
                "invalid connection string {shown}: {}",
                redact(&e.to_string())
            )
        })
        .context("fix the URI (mongodb://[user:password@]host[:port]/?options)")?;
    // A refused connection is an answer, not a time-out: when every host refuses at once,
    // say so now instead of waiting out the server-selection timeout.
    if let Some(refused) = all_refused(&opts.hosts).await {
        bail!(
            "cannot reach MongoDB at {shown}: Connection refused by {refused}\n  fix: check that the server runs and the URI is right, or pass --uri / set MONGODB_URI"
        );
    }
    opts.app_name.get_or_insert_with(|| "caas".into());
    opts.server_selection_timeout = Some(timeout);
    opts.connect_timeout = Some(timeout);
    let commands = Arc::new(AtomicU64::new(0));
    let counter = commands.clone();
    // Counted from pool checkouts, not command monitoring: with a command handler installed
    // the driver copies every command and reply into a `Document` for the event, which
    // doubled the peak memory of a fleet-wide diff (the shared database's listCollections
    // reply is megabytes) and cost CPU on every insert batch.
    opts.cmap_event_handler = Some(EventHandler::callback(move |ev: CmapEvent| {
        if let CmapEvent::ConnectionCheckedOut(_) = ev {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }));
    let client = Client::with_options(opts).map_err(|e| {
        anyhow!(
            "cannot create a client for {shown}: {}",
            redact(&e.to_string())
        )
    })?;
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(|e| {
            anyhow!(
                "cannot reach MongoDB at {shown} within {}s: {}\n  fix: check that the server runs and the URI is right, or pass --uri / set MONGODB_URI",
                timeout.as_secs(),
                reason(&redact(&e.to_string()))
            )
        })?;
    commands.store(0, Ordering::Relaxed);
    Ok(Connection {
        client,
        commands,
        shown_uri: shown,
    })
}

/// The useful part of a driver error: for server selection, the socket error or the
/// server's answer, not the whole topology description.
fn reason(s: &str) -> String {
    for marker in ["I/O error: ", "Error: Kind: ", "message: "] {
        if let Some(i) = s.find(marker) {
            let rest = &s[i + marker.len()..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            let what = if s.contains("Server selection timeout") {
                "no server answered: "
            } else {
                ""
            };
            return format!("{what}{}", rest[..end].trim());
        }
    }
    first_line(s)
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() > 300 {
        format!("{}...", &line[..300])
    } else {
        line.to_owned()
    }
}
