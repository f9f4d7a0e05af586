//! Running a step's checks on an answer. Pure checks are evaluated by `velollm-core`; command checks run
//! here, with the answer on standard input, in `$VELOLLM_OUTPUT`, and its first fenced code block (or the
//! whole answer when it has none) in `$VELOLLM_CODE`.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use velollm_core::measure::check::{Check, CheckKind, CheckOutcome, evaluate};
use velollm_core::measure::record::RequestRecord;

/// How long a check command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The first fenced code block of a Markdown answer, or the whole answer.
pub fn code_block(text: &str) -> &str {
    let Some(start) = text.find("```") else { return text };
    let after = &text[start + 3..];
    let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
    let body = &after[body_start..];
    body.find("```").map_or(body, |end| &body[..end])
}

/// Evaluate every check on a successful record, storing the outcomes in it.
pub async fn run_checks(checks: &[Check], record: &mut RequestRecord) {
    let text = record.text.clone().unwrap_or_default();
    for check in checks {
        let outcome = match evaluate(check, &text, &record.tool_calls) {
            Some(o) => o,
            None => match &check.kind {
                CheckKind::Command(cmd) => run_command(check, cmd, &text, record.id).await,
                _ => continue,
            },
        };
        record.checks.push(outcome);
    }
}

async fn run_command(check: &Check, cmd: &str, text: &str, id: u64) -> CheckOutcome {
    let dir = std::env::temp_dir();
    let stem = format!("velollm-{}-{id}", std::process::id());
    let output_path = dir.join(format!("{stem}-output.txt"));
    let code_path = dir.join(format!("{stem}-code.txt"));
    let result = async {
        tokio::fs::write(&output_path, text).await?;
        tokio::fs::write(&code_path, code_block(text)).await?;
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("VELOLLM_OUTPUT", &output_path)
            .env("VELOLLM_CODE", &code_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is fine.
            let _ = stdin.write_all(text.as_bytes()).await;
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
            Ok(out) => out.map(Some),
            Err(_) => Ok(None),
        }
    }
    .await;
    let _ = tokio::fs::remove_file(&output_path).await;
    let _ = tokio::fs::remove_file(&code_path).await;
    let (passed, detail) = match result {
        Ok(Some(out)) => {
            let said =
                String::from_utf8_lossy(if out.stderr.is_empty() { &out.stdout } else { &out.stderr }).into_owned();
            let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            let last: String = last.chars().take(200).collect();
            (
                out.status.success(),
                if out.status.success() {
                    String::new()
                } else {
                    format!("exit {}: {last}", out.status.code().unwrap_or(-1))
                },
            )
        }
        Ok(None) => (false, format!("timed out after {COMMAND_TIMEOUT:?}")),
        Err(e) => (false, format!("cannot run `{cmd}`: {e}")),
    };
    CheckOutcome { name: check.label(), passed, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_first_code_block() {
        assert_eq!(code_block("Here:\n```python\nprint(1)\n```\nDone"), "print(1)\n");
        assert_eq!(code_block("no fences"), "no fences");
    }

    #[tokio::test]
    async fn command_checks_see_the_answer() {
        let checks = vec![
            Check { name: Some("has hello".into()), kind: CheckKind::Command("grep -q hello".into()) },
            Check { name: None, kind: CheckKind::Command("test \"$(cat \"$VELOLLM_CODE\")\" = 'x = 1'".into()) },
            Check { name: Some("fails".into()), kind: CheckKind::Command("echo boom >&2; exit 3".into()) },
            Check { name: Some("pure".into()), kind: CheckKind::Contains("HELLO".into()) },
        ];
        let mut r = RequestRecord { text: Some("hello\n```py\nx = 1\n```\n".into()), ..Default::default() };
        run_checks(&checks, &mut r).await;
        let got: Vec<(bool, &str)> = r.checks.iter().map(|c| (c.passed, c.detail.as_str())).collect();
        assert_eq!(got, vec![(true, ""), (true, ""), (false, "exit 3: boom"), (true, "")]);
    }
}
