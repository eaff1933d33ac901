//! The journal of acknowledged updates: one line per acknowledgement,
//! `id generation counter cookie`, appended and fsync'd by a writer thread
//! (group commit), so that after a crash of this process every line on disk
//! names an update the store had acknowledged.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// One acknowledged update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The session's logical id (its value embeds it).
    pub id: u32,
    /// Incremented whenever the session had to be created afresh.
    pub generation: u32,
    /// The acknowledged counter.
    pub counter: u64,
    /// The cookie value naming the session.
    pub cookie: String,
}

impl Entry {
    /// The journal line, newline included.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.id, self.generation, self.counter, self.cookie
        )
    }

    /// Parses one line; `None` for a torn or malformed line.
    pub fn parse(line: &str) -> Option<Self> {
        let mut it = line.split(' ');
        let e = Entry {
            id: it.next()?.parse().ok()?,
            generation: it.next()?.parse().ok()?,
            counter: it.next()?.parse().ok()?,
            cookie: it.next()?.to_owned(),
        };
        (it.next().is_none() && !e.cookie.is_empty()).then_some(e)
    }
}

/// Sends entries to the writer thread.
pub struct Journal {
    tx: Option<mpsc::Sender<Entry>>,
    thread: Option<JoinHandle<io::Result<u64>>>,
}

impl Journal {
    /// Creates (truncates) the journal at `path` and starts its writer.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        file.sync_all()?;
        let (tx, rx) = mpsc::channel::<Entry>();
        let thread = std::thread::spawn(move || writer(file, rx));
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues an acknowledged entry.
    pub fn append(&self, e: Entry) {
        if let Some(tx) = &self.tx {
            // The writer only stops when we drop the sender.
            let _ = tx.send(e);
        }
    }

    /// Flushes everything queued and returns how many lines were written.
    pub fn close(mut self) -> io::Result<u64> {
        drop(self.tx.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("journal writer panicked")),
            None => Ok(0),
        }
    }
}

fn writer(mut file: File, rx: mpsc::Receiver<Entry>) -> io::Result<u64> {
    let mut lines = 0u64;
    let mut buf = String::new();
    while let Ok(first) = rx.recv() {
        buf.clear();
        buf.push_str(&first.to_line());
        lines += 1;
        while let Ok(more) = rx.try_recv() {
            buf.push_str(&more.to_line());
            lines += 1;
        }
        file.write_all(buf.as_bytes())?;
        file.sync_data()?;
    }
    Ok(lines)
}

/// The summary of a journal: the newest entry per id, plus counts.
#[derive(Debug, Default)]
pub struct Replay {
    /// id → newest (generation, counter) entry.
    pub latest: HashMap<u32, Entry>,
    /// Lines parsed.
    pub lines: u64,
    /// Torn or malformed lines skipped (at most the last one after a SIGKILL).
    pub bad_lines: u64,
}

/// Reads a journal.
pub fn replay(path: &Path) -> io::Result<Replay> {
    let mut r = Replay::default();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        match Entry::parse(&line) {
            Some(e) => {
                r.lines += 1;
                let newer = r
                    .latest
                    .get(&e.id)
                    .is_none_or(|old| (e.generation, e.counter) >= (old.generation, old.counter));
                if newer {
                    r.latest.insert(e.id, e);
                }
            }
            None => r.bad_lines += 1,
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_replay() {
        let dir = std::env::temp_dir().join(format!("session-chaos-j-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal");
        let j = Journal::create(&path).unwrap();
        for (g, n) in [(0, 0), (0, 1), (0, 2), (1, 0)] {
            j.append(Entry {
                id: 7,
                generation: g,
                counter: n,
                cookie: format!("c{g}"),
            });
        }
        j.append(Entry {
            id: 8,
            generation: 0,
            counter: 5,
            cookie: "d".into(),
        });
        assert_eq!(j.close().unwrap(), 5);
        // A torn last line, as a SIGKILL mid-write would leave.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"9 0 1").unwrap();
        let r = replay(&path).unwrap();
        assert_eq!((r.lines, r.bad_lines), (5, 1));
        assert_eq!(r.latest[&7].generation, 1);
        assert_eq!(r.latest[&7].cookie, "c1");
        assert_eq!(r.latest[&8].counter, 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(Entry::parse(""), None);
        assert_eq!(Entry::parse("1 2 x c"), None);
        assert_eq!(Entry::parse("1 2 3"), None);
        assert_eq!(Entry::parse("1 2 3 c extra"), None);
    }
}
