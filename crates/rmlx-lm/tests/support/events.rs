//! A worker request's events gathered (shared by the worker tests).

use rmlx_lm::{Event, GenerationStats};
use std::sync::mpsc::Receiver;

/// Text and stats of a request, from its events; panics on an error event.
pub fn collect(rx: Receiver<Event>) -> (String, GenerationStats) {
    let mut text = String::new();
    loop {
        match rx
            .recv()
            .expect("the worker ends every request with Done or Error")
        {
            Event::Text(t) => text.push_str(&t),
            Event::Logprob(_) => {}
            Event::Done(s) => return (text, s),
            Event::Error(e) => panic!("request failed: {e}"),
        }
    }
}
