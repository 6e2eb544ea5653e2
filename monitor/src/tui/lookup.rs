//! On-demand work off the UI task: the lookup worker (the funnel drill-down and a person,
//! on a connection of its own so a long refresh never holds them up) and writing an
//! export.
//!
//! Invariant: every lookup ends — connecting and the query each have a deadline — with its
//! answer or an error, sent back as [`Msg::Looked`]; a panic in the query code is that
//! lookup's error; an export is written with `create_new` (never over an existing file) on
//! a blocking thread, and its path or error comes back as [`Msg::Exported`].

use std::{path::PathBuf, sync::Arc};

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{
    fetch::{connect, one_line, SECTION_TIMEOUT},
    terminal,
};
use crate::{
    app::{Looked, Lookup, Msg},
    query,
};

/// The lookup worker: one connection, reopened when lost; lookups one at a time, in order.
pub fn spawn_worker(url: String, to_ui: mpsc::UnboundedSender<Msg>) -> mpsc::Sender<Lookup> {
    let (tx, mut rx) = mpsc::channel::<Lookup>(8);
    tokio::spawn(async move {
        let mut client: Option<Arc<Client>> = None;
        while let Some(lookup) = rx.recv().await {
            let c = match client.as_ref().filter(|c| !c.is_closed()) {
                Some(c) => Ok(c.clone()),
                None => connect(&url).await.map(Arc::new),
            };
            let answer = match c {
                Ok(c) => {
                    client = Some(c.clone());
                    run(c, lookup).await
                }
                Err(e) => {
                    client = None;
                    failed(lookup, e)
                }
            };
            if to_ui.send(Msg::Looked(Box::new(answer))).is_err() {
                break;
            }
        }
    });
    tx
}

/// The lookup's error answer.
pub fn failed(lookup: Lookup, error: String) -> Looked {
    match lookup {
        Lookup::DropOff {
            window,
            steps,
            step,
            ..
        } => Looked::DropOff {
            window,
            steps,
            step,
            result: Err(error),
        },
        Lookup::Person { id } => Looked::Person {
            id,
            result: Err(error),
        },
    }
}

async fn run(client: Arc<Client>, lookup: Lookup) -> Looked {
    let task = {
        let lookup = lookup.clone();
        tokio::spawn(terminal::isolated(async move {
            let deadline = |e: tokio::time::error::Elapsed| {
                format!("timed out after {}s: {e}", SECTION_TIMEOUT.as_secs())
            };
            match lookup {
                Lookup::DropOff {
                    window,
                    steps,
                    step,
                    filter,
                } => {
                    let q = query::drill::drop_off_filtered(&client, window, &steps, step, &filter);
                    let result = tokio::time::timeout(SECTION_TIMEOUT, q)
                        .await
                        .map_err(deadline)
                        .and_then(|r| r.map_err(|e| one_line(&e.to_string())));
                    Looked::DropOff {
                        window,
                        steps,
                        step,
                        result,
                    }
                }
                Lookup::Person { id } => {
                    let q = query::person::person(&client, &id);
                    let result = tokio::time::timeout(SECTION_TIMEOUT, q)
                        .await
                        .map_err(deadline)
                        .and_then(|r| r.map_err(|e| one_line(&e.to_string())));
                    Looked::Person { id, result }
                }
            }
        }))
    };
    match task.await {
        Ok(answer) => answer,
        Err(_) => failed(lookup, "internal error in the query".into()),
    }
}

/// Writes an export off the UI task; its path or error comes back as a message.
pub fn spawn_export(file_name: String, csv: String, to_ui: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let written = tokio::task::spawn_blocking(move || write_export(&file_name, &csv)).await;
        let result = written.unwrap_or_else(|e| Err(format!("the writer stopped: {e}")));
        let _ = to_ui.send(Msg::Exported(result));
    });
}

/// `file_name` in the current directory, else in the temporary directory (`$TMPDIR`);
/// the path written, or both errors.
pub fn write_export(file_name: &str, csv: &str) -> Result<String, String> {
    let here = std::env::current_dir()
        .map(|d| d.join(file_name))
        .map_err(|e| e.to_string());
    let first = match here {
        Ok(path) => match write_new(&path, csv) {
            Ok(()) => return Ok(path.display().to_string()),
            Err(e) => format!("{}: {e}", path.display()),
        },
        Err(e) => format!("current directory: {e}"),
    };
    let tmp = std::env::temp_dir().join(file_name);
    match write_new(&tmp, csv) {
        Ok(()) => Ok(tmp.display().to_string()),
        Err(e) => Err(format!("{first}; {}: {e}", tmp.display())),
    }
}

fn write_new(path: &PathBuf, csv: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(csv.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_never_overwrites_and_falls_back_to_tmp() {
        let name = format!("monitor-test-{}.csv", std::process::id());
        let first = write_export(&name, "a,b\r\n").unwrap_or_else(|e| panic!("{e}"));
        let second = write_export(&name, "c,d\r\n").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(first, second, "the second export went over the first");
        assert_eq!(
            std::fs::read_to_string(&first).ok().as_deref(),
            Some("a,b\r\n")
        );
        assert_eq!(
            std::fs::read_to_string(&second).ok().as_deref(),
            Some("c,d\r\n")
        );
        let _ = std::fs::remove_file(&first);
        let _ = std::fs::remove_file(&second);
    }
}
