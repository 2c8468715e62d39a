//! The one launcher of a thread with a deep stack.
//!
//! The AWS SDK's Security Hub deserializer has very large stack frames in unoptimized builds:
//! a `GetFindings` page overflows the 2 MiB of a default tokio worker. The ingest loops and the
//! Security Hub step's reads run on a thread of [`DEEP_STACK`] bytes instead, so they do not
//! depend on the host runtime's stack size.
//!
//! Uses std threads and tokio only; imports nothing of hanko.

use std::future::Future;

/// The stack of a deep-stack thread.
pub const DEEP_STACK: usize = 16 * 1024 * 1024;

/// Which runtime drives the future's I/O and timers on the deep-stack thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The calling runtime, through its handle: the SDK's connection tasks stay on it (its own
    /// threads keep driving them while the caller awaits the answer), so a shared client's
    /// connection pool is never tied to a runtime that goes away. For a bounded piece of work.
    Caller,
    /// A current-thread runtime of the thread's own, which ends with the future. For a loop
    /// that runs as long as the process.
    Own,
}

/// Why a future could not run on a deep stack.
#[derive(Debug, thiserror::Error)]
pub enum DeepStackError {
    #[error("no async runtime to run on")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    #[error("cannot start a thread")]
    Thread(#[source] std::io::Error),
    #[error("cannot start a runtime on the thread")]
    Runtime(#[source] std::io::Error),
    #[error("the thread ended without an answer")]
    NoAnswer,
}

/// Runs `fut` to completion on a new thread named `name` with a [`DEEP_STACK`] stack, driven
/// as `driver` says, and returns its output.
pub async fn on_deep_stack<F, T>(name: &str, driver: Driver, fut: F) -> Result<T, DeepStackError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handle = match driver {
        Driver::Caller => {
            Some(tokio::runtime::Handle::try_current().map_err(DeepStackError::NoRuntime)?)
        }
        Driver::Own => None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(DEEP_STACK)
        .spawn(move || {
            let out = match handle {
                Some(handle) => Ok(handle.block_on(fut)),
                None => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(fut))
                    .map_err(DeepStackError::Runtime),
            };
            let _ = tx.send(out);
        })
        .map_err(DeepStackError::Thread)?;
    rx.await.map_err(|_| DeepStackError::NoAnswer)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_a_named_thread_with_either_driver() {
        for driver in [Driver::Caller, Driver::Own] {
            let name = on_deep_stack("hanko-test-deep", driver, async {
                tokio::task::yield_now().await;
                std::thread::current().name().map(str::to_string)
            })
            .await
            .unwrap();
            assert_eq!(name.as_deref(), Some("hanko-test-deep"), "{driver:?}");
        }
    }
}
