//! `rmlx chat`: an interactive conversation with history and streaming output.

use super::sampling::{load, timing_line, GenFlags};
use anyhow::Result;
use rmlx_lm::{harmony, ChatSession};
use std::io::{BufRead, Write};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    flags: GenFlags,
}

pub fn run(a: Args) -> Result<()> {
    let engine = load(&a.flags)?;
    if engine.template.is_none() {
        anyhow::bail!(
            "chat: the model has no chat template (use `rmlx generate --no-chat-template`)"
        );
    }
    let harmony_out = engine.uses_harmony();
    let mut session = ChatSession::new(&engine, a.flags.kv_cache)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    eprintln!("rmlx chat: type a message; /reset starts over, /exit quits");
    // Said once per conversation: from then on the oldest turns go as new ones come.
    let mut told_dropping = false;
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break; // end of input
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                session.reset()?;
                told_dropping = false;
                eprintln!("(conversation reset)");
                continue;
            }
            _ => {}
        }
        let sent = if harmony_out {
            let sent = session.send(line, &a.flags.options(true), None, &mut |_| {});
            if let Ok(g) = &sent {
                writeln!(out, "{}", harmony::final_text(&g.text))?;
            }
            sent
        } else {
            let sent = session.send(line, &a.flags.options(false), None, &mut |t| {
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            });
            if sent.is_ok() {
                writeln!(out)?;
            }
            sent
        };
        // A message that cannot fit is this turn's error, not the end of the conversation.
        let g = match sent {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        if session.dropped_turns() > 0 && !told_dropping {
            eprintln!(
                "(older turns were dropped: the conversation outgrew the context of {} tokens; \
                 from now on the oldest turns make way for new ones)",
                engine.model.info().context_length
            );
            told_dropping = true;
        }
        eprintln!("[{}]", timing_line(&g.stats));
    }
    Ok(())
}
