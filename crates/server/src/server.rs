//! Starting and stopping: the server runs on its own thread and tokio
//! runtime, so synchronous callers (the CLI, tests) start it in-process and
//! stop it gracefully, letting requests in flight finish.

use crate::router::router;
use crate::state::AppState;
use crate::{Error, ServerConfig};
use ipfs_accelerate_ipfs::{BlockSource, Cid};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::Notify;

/// Starts servers.
pub struct Server;

/// Asks a running server to stop; cloneable, usable from any thread.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Notify>);

impl ShutdownHandle {
    /// Stops taking connections; requests in flight still get their answers.
    pub fn trigger(&self) {
        // `notify_one` keeps the wake-up when nobody waits yet.
        self.0.notify_one();
    }
}

/// A server listening on [`RunningServer::addr`].
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    thread: JoinHandle<Result<(), Error>>,
}

impl RunningServer {
    /// The bound address (the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Waits until the server stops (a signal, when it handles them, or a
    /// [`ShutdownHandle`]) and every request in flight is answered.
    pub fn wait(self) -> Result<(), Error> {
        self.thread.join().unwrap_or_else(|_| Err(Error::Config("the server thread panicked".into())))
    }

    /// Stops the server gracefully and waits for it.
    pub fn shutdown(self) -> Result<(), Error> {
        self.shutdown.trigger();
        self.wait()
    }
}

/// The block store behind a trait object, as the gateway wants a sized type.
struct Blocks(Arc<dyn BlockSource + Send + Sync>);

impl BlockSource for Blocks {
    fn get_block(&self, cid: &Cid) -> ipfs_accelerate_ipfs::Result<Vec<u8>> {
        self.0.get_block(cid)
    }
}

impl Server {
    /// Reads the models' descriptions, binds `config.addr` and serves on a
    /// thread of its own; returns once the socket is bound.
    pub fn start(config: ServerConfig) -> Result<RunningServer, Error> {
        let state = Arc::new(AppState::new(&config)?);
        let gateway = config.blocks.clone().map(|b| ipfs_accelerate_ipfs::gateway::router(Arc::new(Blocks(b))));
        let app = router(state, gateway, config.max_body_bytes, config.max_audio_bytes);
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("http").enable_all().build()?;
        let std_listener =
            std::net::TcpListener::bind(config.addr).map_err(|source| Error::Bind { addr: config.addr, source })?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let notify = Arc::new(Notify::new());
        let shutdown = ShutdownHandle(notify.clone());
        let handle_signals = config.handle_signals;
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name("http-server".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                // Handlers are installed before the caller hears the server is
                // up, so a signal sent right after is never the default (fatal) one.
                let signals = if handle_signals { Some(Signals::install()) } else { None };
                let _ = ready_tx.send(Ok(()));
                let stop = async move {
                    match signals {
                        Some(mut signals) => {
                            tokio::select! {
                                _ = notify.notified() => {}
                                _ = signals.recv() => {}
                            }
                        }
                        None => notify.notified().await,
                    }
                };
                axum::serve(listener, app).with_graceful_shutdown(stop).await.map_err(Error::Io)
            })
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(RunningServer { addr, shutdown, thread }),
            Ok(Err(e)) => Err(Error::Io(e)),
            Err(_) => Err(Error::Config("the server thread stopped while starting".into())),
        }
    }
}

/// Ctrl-C and (on Unix) SIGTERM, listened for from the moment of install.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("cannot listen for a shutdown signal: {e}");
                    None
                }
            };
            Signals { interrupt: listen(SignalKind::interrupt()), terminate: listen(SignalKind::terminate()) }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Resolves when one of the signals arrives.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.interrupt) => {}
                _ = next(&mut self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
