//! `mistral-events sim`: the simulator as a server of its own.

use std::io::Write;

use mistral_events::sim::Simulator;

use crate::args::SimArgs;
use crate::Exit;

pub(crate) async fn sim(args: SimArgs) -> Exit {
    let mut builder = Simulator::builder().port(args.port);
    if let Some(delay) = args.chunk_delay {
        builder = builder.chunk_delay(delay);
    }
    let simulator = match builder.start().await {
        Ok(simulator) => simulator,
        Err(error) => {
            eprintln!(
                "mistral-events: cannot start the simulator on port {}: {error}",
                args.port
            );
            return Exit::Failed;
        }
    };
    for faults in args.faults {
        simulator.push_faults(faults);
    }
    // The address is the command's output; scripts read it from stdout. A
    // closed stdout is no reason to stop serving.
    let _ = writeln!(std::io::stdout(), "{}", simulator.base_url());
    eprintln!(
        "mistral-events: simulator listening; set MISTRAL_BASE_URL={} to use it. Ctrl-C stops it.",
        simulator.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    simulator.shutdown().await;
    Exit::Complete
}
