//! Which server to talk to, by the environment: the rule the CLI and the
//! examples share.
//!
//! | `MISTRAL_API_KEY` | `MISTRAL_BASE_URL` | server |
//! | --- | --- | --- |
//! | unset | unset | the built-in simulator, started in process |
//! | any | set | that server, with the key if one is set |
//! | set | unset | `https://api.mistral.ai` |
//!
//! Empty values count as unset.
//!
//! ```
//! use mistral_events::backend::Backend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # std::env::remove_var("MISTRAL_API_KEY");
//! # std::env::remove_var("MISTRAL_BASE_URL");
//! let backend = Backend::from_env().await?;
//! eprintln!("using {}", backend.describe());
//! let client = backend.client_builder().build()?;
//! assert!(backend.is_simulator());
//! # let _ = client;
//! backend.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::io;

use crate::client::{env_value, Client, ClientBuilder, DEFAULT_BASE_URL};
use crate::sim::{Simulator, SimulatorBuilder};

/// The server picked from the environment. See the [module docs](self).
#[derive(Debug)]
pub struct Backend {
    simulator: Option<Simulator>,
    description: String,
}

impl Backend {
    /// Applies the rule, starting the simulator when neither variable is
    /// set.
    ///
    /// # Errors
    ///
    /// The simulator's error when it cannot bind a port.
    pub async fn from_env() -> io::Result<Self> {
        Self::from_env_with(Simulator::builder()).await
    }

    /// Like [`from_env`](Self::from_env), starting the simulator from
    /// `simulator` when it is picked (to slow its chunks for a demo, say).
    ///
    /// # Errors
    ///
    /// The simulator's error when it cannot bind a port.
    pub async fn from_env_with(simulator: SimulatorBuilder) -> io::Result<Self> {
        let key = env_value("MISTRAL_API_KEY");
        let base_url = env_value("MISTRAL_BASE_URL");
        if key.is_some() || base_url.is_some() {
            let url = base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
            return Ok(Self {
                simulator: None,
                description: url,
            });
        }
        let simulator = simulator.start().await?;
        let description = format!("the built-in simulator at {}", simulator.base_url());
        Ok(Self {
            simulator: Some(simulator),
            description,
        })
    }

    /// A client builder aimed at the picked server, with the key from the
    /// environment when it is not the simulator.
    pub fn client_builder(&self) -> ClientBuilder {
        match &self.simulator {
            Some(simulator) => Client::builder().base_url(simulator.base_url()),
            None => Client::builder().from_env(),
        }
    }

    /// Whether the built-in simulator was started.
    pub fn is_simulator(&self) -> bool {
        self.simulator.is_some()
    }

    /// The simulator, when it was started.
    pub fn simulator(&self) -> Option<&Simulator> {
        self.simulator.as_ref()
    }

    /// Where requests go, for a notice on stderr.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Stops the simulator, if one was started.
    pub async fn shutdown(self) {
        if let Some(simulator) = self.simulator {
            simulator.shutdown().await;
        }
    }
}
