//! The run's execution slots (`-j`): a job takes its first one in the order the scheduler
//! started the jobs, whichever finishes its key look-up first.
//!
//! Up to twice `-j` jobs are in flight, so that look-ups and output storing overlap commands.
//! Without turns, the job whose look-up happened to end first would run first, and a
//! `backfill --reverse -j 1` could start with the second-newest partition.
//!
//! A job passes its turn on as soon as it is in the semaphore's queue (which is fair), not once
//! it has a slot: the job its turn wakes then runs at once, instead of waiting on a thread that
//! a command's start blocks until the command is `exec`ed (see `crate::job::Slots`).

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// `-j` slots, and whose turn it is to take a first one.
#[derive(Debug)]
pub(crate) struct Gate {
    slots: Semaphore,
    turns: Mutex<Turns>,
    changed: Notify,
}

/// Tickets are handed out by the scheduler, 0, 1, 2, ..., as it starts jobs.
#[derive(Debug, Default)]
struct Turns {
    /// The ticket whose turn it is.
    next: u64,
    /// Later tickets already given up (their jobs took no slot, or were dropped).
    passed: BTreeSet<u64>,
}

impl Gate {
    /// `jobs` slots: the scheduler's `-j`, already clamped to 1..=[`Semaphore::MAX_PERMITS`].
    pub(crate) fn new(jobs: usize) -> Gate {
        let slots = Semaphore::new(jobs);
        Gate { slots, turns: Mutex::default(), changed: Notify::new() }
    }

    /// Waits until every earlier ticket has taken its first slot or given up its turn.
    pub(crate) async fn turn(&self, ticket: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.turns.lock().expect("turns lock").next == ticket {
                return;
            }
            changed.await;
        }
    }

    /// A slot, in the order jobs ask (the semaphore is fair).
    pub(crate) async fn slot(&self) -> SemaphorePermit<'_> {
        self.slots.acquire().await.expect("the run's semaphore is never closed")
    }

    /// The ticket whose turn it is.
    #[cfg(test)]
    pub(crate) fn next_turn(&self) -> u64 {
        self.turns.lock().expect("turns lock").next
    }

    /// `ticket` is done with its turn: the next one's comes once all earlier ones are done.
    pub(crate) fn pass(&self, ticket: u64) {
        let mut turns = self.turns.lock().expect("turns lock");
        turns.passed.insert(ticket);
        let before = turns.next;
        loop {
            let next = turns.next;
            if !turns.passed.remove(&next) {
                break;
            }
            turns.next += 1;
        }
        if turns.next != before {
            drop(turns);
            self.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Jobs whose look-ups end in the reverse order still take slots in ticket order; a ticket
    /// given up (a cache hit) does not hold the others back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slots_go_in_ticket_order_whoever_asks_first() {
        let gate = Arc::new(Gate::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut jobs = Vec::new();
        for ticket in 0..4u64 {
            let (gate, order) = (gate.clone(), order.clone());
            jobs.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(40 * (4 - ticket))).await;
                if ticket == 1 {
                    gate.pass(ticket); // a hit: no slot
                    return;
                }
                gate.turn(ticket).await;
                let slot = gate.slot().await;
                gate.pass(ticket);
                order.lock().unwrap().push(ticket);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
        }
        for j in jobs {
            j.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 2, 3]);
    }
}
