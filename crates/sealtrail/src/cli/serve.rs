//! `sealtrail serve`: resolves the settings, starts the application on a tokio runtime and
//! prints the first admin token (once) and the address it listens on.

use anyhow::{Context as _, Result};
use sealtrail_server::archive::TargetOpener;

/// How `serve` (and `doctor`) open the archive target (`--archive-to`): directories, and
/// `s3://` through the S3 target this binary links ([`super::target::open_spec`]).
pub fn target_opener() -> TargetOpener {
    super::target::opener()
}

pub fn run(settings: sealtrail_server::config::Settings) -> Result<()> {
    let settings = settings.resolve().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // First, so that a SIGTERM while the store opens is a graceful stop, not a kill.
        let stop = sealtrail_server::app::shutdown_signal()
            .context("cannot install the SIGINT and SIGTERM handlers")?;
        let (data, store) = (
            settings.storage.data.clone(),
            settings.storage.store.clone(),
        );
        let app = sealtrail_server::app::Application::build_with_targets(
            settings,
            sealtrail_server::clock::Clock::system(),
            target_opener(),
        )
        .await?;
        if let Some(admin) = &app.first_admin_token {
            // Shown once: only its hash is stored.
            println!("admin token (shown once; store it now): {}", admin.token);
        }
        println!(
            "sealtrail listening on http://{} with the store {} and data in {}",
            app.local_addr(),
            store,
            data.display()
        );
        app.run_until_stopped(stop).await
    })
}
