//! The `mistral-events` binary, driven as a user or script would drive it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mistral_events::event::{Event, EventPayload, EventType};
use mistral_events::sim::{answer_text, Fault, Simulator};
use mistral_events::wire::{ChatRequest, Message};

const BIN: &str = env!("CARGO_BIN_EXE_mistral-events");

/// The binary with no Mistral variables in its environment.
fn command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("MISTRAL_API_KEY")
        .env_remove("MISTRAL_BASE_URL")
        .env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_events(stdout: &[u8]) -> Vec<Event> {
    text(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}")))
        .collect()
}

#[test]
fn chat_with_no_key_uses_the_simulator_and_prints_the_answer() {
    let output = run(command().args(["chat", "Say hi"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected = answer_text(&ChatRequest::new(
        "mistral-small-latest",
        vec![Message::user("Say hi")],
    ));
    assert_eq!(text(&output.stdout), format!("{expected}\n"));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("simulator"), "says which server: {stderr}");
    assert!(stderr.contains("complete"), "summary on stderr: {stderr}");
}

#[test]
fn events_jsonl_prints_every_event_and_nothing_else() {
    let output = run(command().args([
        "chat",
        "--events",
        "jsonl",
        "--request-id",
        "cli-1",
        "--system",
        "Be brief.",
        "Hello",
    ]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let events = parse_events(&output.stdout);
    assert_eq!(events.first().unwrap().event_type(), EventType::Start);
    assert_eq!(events.last().unwrap().event_type(), EventType::Complete);
    assert!(events
        .iter()
        .all(|event| event.request_id.as_ref().map(|id| id.as_str()) == Some("cli-1")));
    for (position, event) in events.iter().enumerate() {
        assert_eq!(event.seq, position as u64);
    }
    let joined: String = events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::Chunk { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    let EventPayload::Complete(done) = &events.last().unwrap().payload else {
        unreachable!()
    };
    assert_eq!(joined, done.content);
}

#[test]
fn events_none_prints_one_summary_line() {
    let output = run(command().args(["chat", "--events", "none", "--max-tokens", "7", "Count"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let fields: Vec<(&str, u64)> = lines[0]
        .strip_prefix("complete ")
        .expect("starts with complete")
        .split(' ')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name, value.parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "chunks",
            "chars",
            "prompt_tokens",
            "completion_tokens",
            "ttft_ms",
            "total_ms"
        ]
    );
    assert_eq!(fields[0].1, 7, "max-tokens 7 gives 7 chunks");
    assert_eq!(fields[3].1, 7);
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["chat", "--help"],
        vec!["sim", "--help"],
        vec!["replay", "--help"],
    ] {
        let output = run(command().args(&args));
        assert!(output.status.success(), "{args:?}");
        assert!(text(&output.stdout).contains("Usage"), "{args:?}");
    }
    let chat_help = text(&run(command().args(["chat", "--help"])).stdout);
    for option in [
        "--model",
        "--system",
        "--max-tokens",
        "--request-id",
        "--max-retries",
        "--connect-timeout",
        "--first-byte-timeout",
        "--idle-timeout",
        "--events",
    ] {
        assert!(chat_help.contains(option), "chat --help lists {option}");
    }
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(run(command().args(["chat"])).status.code(), Some(2));
    assert_eq!(
        run(command().args(["chat", "--events", "xml", "hi"]))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(command().args(["chat", "--idle-timeout", "soon", "hi"]))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(command().args(["chat", "--request-id", "has space", "hi"]))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(command().args(["frobnicate"])).status.code(), Some(2));
    assert_eq!(
        run(command().args(["chat", "--idle-timeout", "0", "hi"]))
            .status
            .code(),
        Some(2),
        "a zero timeout is refused"
    );
    let bad_url = run(command()
        .env("MISTRAL_BASE_URL", "ftp://nowhere")
        .args(["chat", "hi"]));
    assert_eq!(bad_url.status.code(), Some(2), "{}", text(&bad_url.stderr));
}

/// Starts a simulator on its own runtime thread and returns its URL.
fn simulator(
    faults: Vec<Fault>,
    chunk_delay: Option<Duration>,
) -> (String, std::sync::mpsc::Sender<()>) {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let mut builder = Simulator::builder();
            if let Some(delay) = chunk_delay {
                builder = builder.chunk_delay(delay);
            }
            for fault in faults {
                builder = builder.fault(fault);
            }
            let sim = builder.start().await.unwrap();
            url_tx.send(sim.base_url()).unwrap();
            tokio::task::spawn_blocking(move || stop_rx.recv())
                .await
                .ok();
            sim.shutdown().await;
        });
    });
    (url_rx.recv().unwrap(), stop_tx)
}

#[test]
fn an_api_error_exits_with_1_and_says_why() {
    let (url, _stop) = simulator(
        vec![Fault::status(400).with_body(
            r#"{"object":"error","message":"Invalid model: nope","type":"invalid_model","param":null,"code":"1500"}"#,
        )],
        None,
    );
    let output = run(command()
        .env("MISTRAL_BASE_URL", &url)
        .args(["chat", "--model", "nope", "hi"]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&url), "names the server: {stderr}");
    assert!(stderr.contains("Invalid model: nope"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes off a terminal: {stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_stall_past_idle_timeout_ends_in_a_timeout_event() {
    let (url, _stop) = simulator(vec![Fault::StallAfter(2)], None);
    let output = run(command().env("MISTRAL_BASE_URL", &url).args([
        "chat",
        "--events",
        "jsonl",
        "--idle-timeout",
        "300ms",
        "hi",
    ]));
    assert_eq!(output.status.code(), Some(1));
    let events = parse_events(&output.stdout);
    let EventPayload::Error(info) = &events.last().unwrap().payload else {
        panic!("error last: {events:?}")
    };
    assert_eq!(info.kind.as_str(), "timeout");
    assert!(!info.partial.is_empty());
}

#[test]
fn replay_runs_a_captured_body_through_the_bus() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/streams/text_with_padding.sse"
    );
    let output = run(command().args(["replay", path]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "The river bends eastward.\n");

    let output = run(command().args(["replay", "--events", "jsonl", path]));
    let events = parse_events(&output.stdout);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type() == EventType::Chunk)
            .count(),
        5
    );

    let missing = run(command().args(["replay", "/nonexistent/body.sse"]));
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let (url, _stop) = simulator(Vec::new(), Some(Duration::from_millis(40)));
    let mut child = command()
        .env("MISTRAL_BASE_URL", &url)
        .args(["chat", "--events", "jsonl", "hi"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"start\""));
    drop(stdout);

    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("broken pipe"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn ctrl_c_publishes_cancelled_and_exits_130() {
    let (url, _stop) = simulator(Vec::new(), Some(Duration::from_millis(200)));
    let mut child = command()
        .env("MISTRAL_BASE_URL", &url)
        .args(["chat", "--events", "jsonl", "hi"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    // Wait for the first chunk, then interrupt.
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        let is_chunk = line.contains("\"chunk\"");
        lines.push(line);
        if is_chunk {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let last: Event = serde_json::from_str(rest.lines().last().expect("a last line")).unwrap();
    assert_eq!(last.event_type(), EventType::Cancelled);
}

#[test]
fn sim_command_serves_until_stopped() {
    let mut child = command()
        .args(["sim", "--port", "0", "--fault", "status=503"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // The first request meets the scripted 503; the CLI retries it away.
    let output = run(command()
        .env("MISTRAL_BASE_URL", &url)
        .args(["chat", "--events", "jsonl", "hi"]));
    assert!(output.status.success());
    let events = parse_events(&output.stdout);
    assert!(events
        .iter()
        .any(|event| event.event_type() == EventType::Retry));

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn resume_continues_a_cut_stream_and_resume_0_reports_the_partial_text() {
    let expected = answer_text(&ChatRequest::new(
        "mistral-small-latest",
        vec![Message::user("hi")],
    ));
    let joined = |events: &[Event]| -> String {
        events
            .iter()
            .filter_map(|event| match &event.payload {
                EventPayload::Chunk { content, .. } => Some(content.as_str()),
                _ => None,
            })
            .collect()
    };

    let (url, _stop) = simulator(vec![Fault::CutAfter(3), Fault::CutAfter(3)], None);
    let output = run(command()
        .env("MISTRAL_BASE_URL", &url)
        .args(["chat", "--events", "jsonl", "--resume", "2", "hi"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let events = parse_events(&output.stdout);
    assert_eq!(joined(&events), expected, "one unbroken answer");
    let resumes = events
        .iter()
        .filter(|event| matches!(&event.payload, EventPayload::Retry { reason, .. } if reason.starts_with("resume")))
        .count();
    assert_eq!(resumes, 2);

    let (url, _stop) = simulator(vec![Fault::CutAfter(3)], None);
    let output = run(command()
        .env("MISTRAL_BASE_URL", &url)
        .args(["chat", "--events", "jsonl", "--resume", "0", "hi"]));
    assert_eq!(output.status.code(), Some(1));
    let events = parse_events(&output.stdout);
    let EventPayload::Error(info) = &events.last().unwrap().payload else {
        panic!("error last")
    };
    assert_eq!(info.partial, joined(&events));
    assert!(expected.starts_with(&info.partial) && !info.partial.is_empty());
}
