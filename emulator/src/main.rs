//! `emulator --scenario FILE [--port N]`: serves the Microsoft cloud emulator on 127.0.0.1 and
//! prints the base URL of each service and the scenario's apps and tenants.

use std::path::PathBuf;

use clap::Parser;

/// Serves Microsoft's identity platform and the Defender alert APIs on 127.0.0.1.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Scenario file (JSON); see emulator/scenarios/sample.json.
    #[arg(long, default_value = "emulator/scenarios/sample.json")]
    scenario: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let scenario = emulator::Scenario::from_json_file(&args.scenario)?;
    let description = scenario.description.clone();
    let apps: Vec<(String, String)> = scenario
        .apps
        .iter()
        .map(|a| (a.client_id.clone(), a.name.clone()))
        .collect();
    // The scenario is not kept beside the world it becomes (a fleet's is large).
    let emu = emulator::start_on(([127, 0, 0, 1], args.port).into(), scenario).await?;
    let u = emu.urls();
    println!(
        "Microsoft cloud emulator serving {}",
        args.scenario.display()
    );
    if !description.is_empty() {
        println!("  {description}");
    }
    println!("  authority  {}", u.authority);
    println!("  graph      {}", u.graph);
    println!("  mde        {}", u.mde);
    println!("  siem       {} (each tenant's own region)", u.siem);
    println!("  siem-eu    {}", u.siem_eu);
    println!("  siem-us    {}", u.siem_us);
    println!("  siem-uk    {}", u.siem_uk);
    println!("  control    {}", u.control);
    println!("  clock      {}", emu.state().now());
    for (client_id, name) in &apps {
        println!("  app        {client_id} ({name})");
    }
    // A fleet scenario has thousands: the first few, then a count.
    const LISTED: usize = 20;
    {
        let world = emu.state().world();
        for t in world.tenants.values().take(LISTED) {
            let alerts = t.alerts.len();
            println!("  tenant     {} {} ({alerts} alerts)", t.id, t.name);
        }
        if world.tenants.len() > LISTED {
            println!(
                "  …          and {} more tenants",
                world.tenants.len() - LISTED
            );
        }
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
