//! A client-side request budget per HubSpot portal, so a healthy run sees almost no 429s.
//!
//! HubSpot allows a burst of requests per rolling window per portal (110 per 10 s for OAuth apps)
//! and, separately, 5 search requests per second. We count what we send in a rolling window, and
//! also follow HubSpot's own `X-HubSpot-RateLimit-*` headers when they say the window is spent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::now_ms;
use crate::response::HubspotResponse;
use crate::retry::header_number;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub max: u32,
    pub interval: Duration,
}

impl Rate {
    /// HubSpot's public-app burst limit.
    pub const OAUTH_APP: Rate = Rate {
        max: 110,
        interval: Duration::from_secs(10),
    };
    pub const SEARCH: Rate = Rate {
        max: 5,
        interval: Duration::from_secs(1),
    };

    /// `MAX/INTERVAL_MS`, e.g. `110/10000`.
    pub fn parse(text: &str) -> anyhow::Result<Rate> {
        let (max, interval) = text.split_once('/').ok_or_else(|| {
            anyhow::anyhow!("expected MAX/INTERVAL_MS such as 110/10000, got {text:?}")
        })?;
        let rate = Rate {
            max: max.trim().parse()?,
            interval: Duration::from_millis(interval.trim().parse()?),
        };
        anyhow::ensure!(
            rate.max > 0 && !rate.interval.is_zero(),
            "a rate must allow something"
        );
        Ok(rate)
    }
}

/// A rolling-window counter: at most `max` sends in any `interval`.
#[derive(Debug)]
struct Window {
    rate: Rate,
    sent: VecDeque<Instant>,
    /// Set when HubSpot says the window is spent (Remaining 0, or a 429).
    blocked_until: Option<Instant>,
}

impl Window {
    fn new(rate: Rate) -> Self {
        Window {
            rate,
            sent: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// Takes a slot now, or says how long to wait for one.
    fn try_take(&mut self, now: Instant) -> Result<Instant, Duration> {
        if let Some(until) = self.blocked_until {
            if until > now {
                return Err(until - now);
            }
            self.blocked_until = None;
        }
        while self
            .sent
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.rate.interval)
        {
            self.sent.pop_front();
        }
        if (self.sent.len() as u32) < self.rate.max {
            self.sent.push_back(now);
            Ok(now)
        } else {
            let oldest = *self.sent.front().expect("window is full");
            Err(self.rate.interval - now.duration_since(oldest))
        }
    }
}

impl Window {
    /// The slot taken at `taken` was answered at `now`. HubSpot counted the request when it
    /// arrived, somewhere in between; counting it from the answer on, the slot frees no earlier
    /// than HubSpot's does, so a request sent the moment a slot frees is not refused for having
    /// left sooner after its predecessor than it reached HubSpot.
    fn answered(&mut self, taken: Instant, now: Instant) {
        if let Some(position) = self.sent.iter().position(|&at| at == taken) {
            self.sent.remove(position);
            // Every stamp is an earlier send or answer: the window stays in time order.
            self.sent.push_back(now);
        }
    }

    /// Sends the window admits now, and how long until it admits `wanted` (at most `max`).
    fn room(&mut self, now: Instant, wanted: u32) -> (u32, Duration) {
        if let Some(until) = self.blocked_until.filter(|until| *until > now) {
            return (0, until - now);
        }
        while self
            .sent
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.rate.interval)
        {
            self.sent.pop_front();
        }
        let free = self.rate.max.saturating_sub(self.sent.len() as u32);
        let short = wanted.min(self.rate.max).saturating_sub(free) as usize;
        let wait = match short.checked_sub(1).and_then(|n| self.sent.get(n)) {
            Some(&at) => self.rate.interval.saturating_sub(now.duration_since(at)),
            None => Duration::ZERO,
        };
        (free, wait)
    }
}

/// What a window admits now ([`RateBudget::api_room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Requests it would admit right now (0 while HubSpot says it is spent).
    pub free: u32,
    /// The share of the window asked about, in requests.
    pub wanted: u32,
    /// How long until it admits `wanted` (zero when it does now).
    pub wait: Duration,
}

/// The budget of one HubSpot portal: one window for the API, one for search.
#[derive(Debug)]
pub struct RateBudget {
    api: Mutex<Window>,
    search: Mutex<Window>,
    /// The portal's windows as every instance on one PostgreSQL state counts them.
    shared: Option<SharedWindows>,
    /// Where a spent daily budget is recorded for every instance.
    day: Option<DayLimit>,
}

/// Where instances that share a portal count its requests together
/// ([`crate::shared_budget`] keeps them in the shared state).
pub trait SharedSlots: Send + Sync {
    /// Takes a slot in `portal`'s `window` (`api` or `search`) at `now` (ms since the epoch):
    /// `Ok(id)`, or `Err(ms)` until one frees.
    fn take(
        &self,
        portal: &str,
        window: &str,
        rate: Rate,
        now: i64,
    ) -> anyhow::Result<Result<i64, i64>>;
    /// The request of slot `id` was answered at `now`.
    fn answered(&self, id: i64, now: i64) -> anyhow::Result<()>;
    /// The slots every instance holds in `portal`'s `window` within `rate.interval` before
    /// `now`, oldest first, as ms since the epoch (when each was taken, or answered).
    fn recent(&self, portal: &str, window: &str, rate: Rate, now: i64) -> anyhow::Result<Vec<i64>>;
}

/// Where the end of a portal's spent daily budget is kept (the state), so that every instance,
/// and this one after a restart, pauses the portal until then without spending a request on
/// HubSpot to learn it again (a 429 `DAILY`, hubspot-api.md §3.3).
pub trait DailyRecord: Send + Sync {
    /// `portal`'s daily budget is spent until `until_ms` (ms since the epoch).
    fn spend_day(&self, portal: &str, until_ms: i64) -> anyhow::Result<()>;
    /// Until when `portal`'s daily budget is spent, if it still is at `now_ms`.
    fn day_spent_until(&self, portal: &str, now_ms: i64) -> anyhow::Result<Option<i64>>;
}

/// How long a budget trusts what it last read of the daily record: another instance's news
/// reaches this one within it.
const DAY_LOOK: Duration = Duration::from_secs(1);

/// A portal's daily record and what this budget last read of it.
struct DayLimit {
    record: Arc<dyn DailyRecord>,
    portal: String,
    /// When it was last read, and the end of the spent day it said.
    known: Mutex<Option<(Instant, Option<i64>)>>,
}

impl std::fmt::Debug for DayLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayLimit")
            .field("portal", &self.portal)
            .finish_non_exhaustive()
    }
}

/// A portal's shared windows, with the slots this instance holds there (by when it took them
/// locally).
struct SharedWindows {
    slots: Arc<dyn SharedSlots>,
    portal: String,
    held: Mutex<Vec<(Instant, i64)>>,
}

impl std::fmt::Debug for SharedWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWindows")
            .field("portal", &self.portal)
            .finish_non_exhaustive()
    }
}

impl RateBudget {
    /// A budget this process alone spends.
    pub fn new(api: Rate) -> Self {
        RateBudget {
            api: Mutex::new(Window::new(api)),
            search: Mutex::new(Window::new(Rate::SEARCH)),
            shared: None,
            day: None,
        }
    }

    /// Records a spent daily budget of `portal` in `record`, and reads it from there
    /// ([`RateBudget::day_spent_until`]).
    pub fn with_daily_record(mut self, record: Arc<dyn DailyRecord>, portal: &str) -> Self {
        self.day = Some(DayLimit {
            record,
            portal: portal.to_owned(),
            known: Mutex::new(None),
        });
        self
    }

    /// HubSpot said the portal's daily budget is spent until `until_ms` (ms since the epoch):
    /// recorded for every instance (a failure to record is logged; this one knows anyway).
    pub fn spend_day(&self, until_ms: i64) {
        let Some(day) = &self.day else { return };
        if let Err(error) = day.record.spend_day(&day.portal, until_ms) {
            tracing::error!(portal = %day.portal, "cannot record the spent daily budget: {error:#}");
        }
        *day.known.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), Some(until_ms)));
    }

    /// Until when (ms since the epoch) the portal's daily budget is spent, as this instance met
    /// it or another recorded it (read at most once per [`DAY_LOOK`]); `None` when it is not.
    pub fn day_spent_until(&self, now_ms: i64) -> Option<i64> {
        let day = self.day.as_ref()?;
        let mut known = day.known.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = known.filter(|(at, _)| at.elapsed() < DAY_LOOK);
        let until = match fresh {
            Some((_, until)) => until,
            None => {
                let read = day.record.day_spent_until(&day.portal, now_ms);
                let until = read.unwrap_or_else(|error| {
                    tracing::error!(portal = %day.portal, "cannot read the daily budget's record: {error:#}");
                    known.and_then(|(_, until)| until)
                });
                *known = Some((Instant::now(), until));
                until
            }
        };
        until.filter(|&until| until > now_ms)
    }

    /// The budget of `portal` (any name that is the same for every instance, e.g. `portal
    /// 12345`), counted in `slots` with every other instance's requests as well as here, so
    /// together they stay within `api` (and search's own limit).
    pub fn shared(api: Rate, slots: Arc<dyn SharedSlots>, portal: &str) -> Self {
        RateBudget {
            shared: Some(SharedWindows {
                slots,
                portal: portal.to_owned(),
                held: Mutex::new(Vec::new()),
            }),
            ..RateBudget::new(api)
        }
    }

    /// Whether other instances count in this budget.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn window(&self, path: &str) -> &Mutex<Window> {
        if is_search(path) {
            &self.search
        } else {
            &self.api
        }
    }

    /// Waits until the window for `path` has room, then takes a slot; returns when it was
    /// taken, for [`RateBudget::answered`]. A shared budget takes a slot in the shared window
    /// too, and waits while the instances together have spent it; should the database fail,
    /// the request goes out on this instance's own count (logged).
    pub async fn acquire(&self, path: &str) -> Instant {
        loop {
            let wait = {
                let mut window = self.window(path).lock().unwrap_or_else(|p| p.into_inner());
                match window.try_take(Instant::now()) {
                    Ok(taken) => match &self.shared {
                        None => return taken,
                        Some(shared) => {
                            let rate = window.rate;
                            match shared.take(path, rate) {
                                Ok(Ok(id)) => {
                                    shared.lock_held().push((taken, id));
                                    return taken;
                                }
                                Ok(Err(wait)) => {
                                    // The others spent the window: this slot is not used.
                                    if let Some(at) = window.sent.iter().rposition(|&t| t == taken)
                                    {
                                        window.sent.remove(at);
                                    }
                                    wait
                                }
                                Err(error) => {
                                    tracing::error!(portal = %shared.portal, "cannot count the request in the shared budget, counting it here only: {error:#}");
                                    return taken;
                                }
                            }
                        }
                    },
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The request whose slot was taken at `taken` has its answer (or failed): the slot counts
    /// from now on, as HubSpot counts it from when it arrived.
    pub fn answered(&self, path: &str, taken: Instant) {
        {
            let mut window = self.window(path).lock().unwrap_or_else(|p| p.into_inner());
            window.answered(taken, Instant::now());
        }
        if let Some(shared) = &self.shared {
            let id = {
                let mut held = shared.lock_held();
                held.iter()
                    .position(|(at, _)| *at == taken)
                    .map(|i| held.swap_remove(i).1)
            };
            if let Some(id) = id
                && let Err(error) = shared.slots.answered(id, now_ms())
            {
                tracing::error!(portal = %shared.portal, "cannot update the shared budget: {error:#}");
            }
        }
    }

    /// What the API window admits now, against `share` of its size: `serve` holds new work back while the window runs low, so that it goes out in
    /// fuller batches once the window comes back.
    ///
    /// A shared budget counts every instance's requests: the room is the smaller of this
    /// instance's window and the shared one (a database error is logged and the local window
    /// answers alone).
    pub fn api_room(&self, share: f64) -> Room {
        let (rate, local) = {
            let mut window = self.api.lock().unwrap_or_else(|p| p.into_inner());
            let rate = window.rate;
            let wanted = ((rate.max as f64 * share).ceil() as u32).clamp(1, rate.max);
            (rate, (wanted, window.room(Instant::now(), wanted)))
        };
        let (wanted, (mut free, mut wait)) = local;
        if let Some(shared) = &self.shared {
            let now = now_ms();
            match shared.slots.recent(&shared.portal, "api", rate, now) {
                Ok(stamps) => {
                    let (shared_free, shared_wait) = shared_room(&stamps, rate, wanted, now);
                    free = free.min(shared_free);
                    wait = wait.max(shared_wait);
                }
                Err(error) => {
                    tracing::error!(portal = %shared.portal, "cannot read the shared budget: {error:#}");
                }
            }
        }
        Room { free, wanted, wait }
    }

    /// Learns from HubSpot's answer. A 429 blocks the window for the interval HubSpot names; a
    /// success with nothing remaining blocks only until the oldest request of the rolling window
    /// ages out (not a whole window: that would waste about a tenth of the rate).
    ///
    /// A 429 `DAILY` records the spent day ([`RateBudget::spend_day`], until the next UTC
    /// midnight): from then on no request of this portal goes out, from any instance.
    pub fn observe(&self, path: &str, response: &HubspotResponse) {
        if crate::retry::classify_response(response, 1) == crate::retry::Action::ParkUntilReset {
            self.spend_day(crate::clock::next_utc_midnight_ms(now_ms()));
        }
        let remaining = header_number(&response.headers, "x-hubspot-ratelimit-remaining");
        let interval = header_number(
            &response.headers,
            "x-hubspot-ratelimit-interval-milliseconds",
        )
        .map(Duration::from_millis);
        if response.status != 429 && remaining != Some(0) {
            return;
        }
        let now = Instant::now();
        let mut window = self.window(path).lock().unwrap_or_else(|p| p.into_inner());
        let interval = interval.unwrap_or(window.rate.interval);
        let wait = match window.sent.front() {
            Some(&oldest) if response.status != 429 => {
                (oldest + interval).saturating_duration_since(now)
            }
            _ => interval,
        };
        window.blocked_until = Some(now + wait);
    }
}

/// What a shared window whose slots are `stamps` (ms since the epoch, oldest first) admits at
/// `now`, and how long until it admits `wanted`: the slot that must age out for it is the
/// `wanted - free`-th oldest.
fn shared_room(stamps: &[i64], rate: Rate, wanted: u32, now: i64) -> (u32, Duration) {
    let interval = i64::try_from(rate.interval.as_millis()).unwrap_or(i64::MAX);
    let live = stamps.iter().filter(|&&at| at > now - interval);
    let live: Vec<i64> = live.copied().collect();
    let free = rate.max.saturating_sub(live.len() as u32);
    let short = wanted.min(rate.max).saturating_sub(free) as usize;
    let wait = match short.checked_sub(1).and_then(|n| live.get(n)) {
        Some(&at) => Duration::from_millis(u64::try_from(at + interval - now).unwrap_or(0)),
        None => Duration::ZERO,
    };
    (free, wait)
}

fn is_search(path: &str) -> bool {
    path.split('?').next().unwrap_or(path).ends_with("/search")
}

impl SharedWindows {
    fn lock_held(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, i64)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot in the shared window of `path`: its id, or how long until one frees.
    fn take(&self, path: &str, rate: Rate) -> anyhow::Result<Result<i64, Duration>> {
        let window = if is_search(path) { "search" } else { "api" };
        Ok(self
            .slots
            .take(&self.portal, window, rate, now_ms())?
            .map_err(|wait_ms| Duration::from_millis(wait_ms.max(1) as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_max_then_says_how_long_to_wait() {
        let rate = Rate {
            max: 2,
            interval: Duration::from_millis(100),
        };
        let mut window = Window::new(rate);
        let start = Instant::now();
        assert!(window.try_take(start).is_ok());
        assert!(window.try_take(start).is_ok());
        let wait = window.try_take(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(window.try_take(start + Duration::from_millis(100)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_remaining_waits_for_the_oldest_request_to_age_out_not_a_whole_window() {
        let rate = Rate {
            max: 110,
            interval: Duration::from_secs(10),
        };
        let budget = RateBudget::new(rate);
        budget.acquire("/crm/v3/objects/companies").await;
        tokio::time::advance(Duration::from_secs(6)).await;
        budget.acquire("/crm/v3/objects/companies").await;
        let mut headers = http::HeaderMap::new();
        headers.insert("x-hubspot-ratelimit-remaining", "0".parse().unwrap());
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            "10000".parse().unwrap(),
        );
        let spent = HubspotResponse {
            status: 200,
            headers,
            body: bytes::Bytes::new(),
        };
        budget.observe("/crm/v3/objects/companies", &spent);
        let start = Instant::now();
        budget.acquire("/crm/v3/objects/companies").await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(4),
            "the oldest send ages out in 4 s"
        );

        let mut limited = spent.clone();
        limited.status = 429;
        budget.observe("/crm/v3/objects/companies", &limited);
        let start = Instant::now();
        budget.acquire("/crm/v3/objects/companies").await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10),
            "a 429 waits the window"
        );
    }

    #[test]
    fn a_slot_counts_from_its_answer() {
        let rate = Rate {
            max: 2,
            interval: Duration::from_millis(100),
        };
        let mut window = Window::new(rate);
        let start = Instant::now();
        let first = window.try_take(start).unwrap();
        window.try_take(start + Duration::from_millis(10)).unwrap();
        // The first request was answered 30 ms after it left: its slot frees at 130 ms, after
        // the second one's (110 ms).
        window.answered(first, start + Duration::from_millis(30));
        assert_eq!(
            window.try_take(start + Duration::from_millis(50)),
            Err(Duration::from_millis(60))
        );
        assert!(window.try_take(start + Duration::from_millis(110)).is_ok());
        assert_eq!(
            window.try_take(start + Duration::from_millis(110)),
            Err(Duration::from_millis(20))
        );
        // A slot that already aged out is not brought back.
        window.answered(first, start + Duration::from_millis(500));
        assert_eq!(window.sent.len(), 2);
    }

    #[test]
    fn the_room_says_how_long_until_enough_of_the_window_is_back() {
        let rate = Rate {
            max: 4,
            interval: Duration::from_millis(100),
        };
        let mut window = Window::new(rate);
        let start = Instant::now();
        assert_eq!(window.room(start, 2), (4, Duration::ZERO));
        for ms in [0, 10, 20] {
            window.try_take(start + Duration::from_millis(ms)).unwrap();
        }
        let now = start + Duration::from_millis(30);
        assert_eq!(window.room(now, 1), (1, Duration::ZERO));
        // Two free needs the first send (at 0 ms) to age out, three the second (at 10 ms).
        assert_eq!(window.room(now, 2), (1, Duration::from_millis(70)));
        assert_eq!(window.room(now, 3), (1, Duration::from_millis(80)));
        window.blocked_until = Some(now + Duration::from_millis(500));
        assert_eq!(window.room(now, 1), (0, Duration::from_millis(500)));
    }

    #[test]
    fn a_shared_room_waits_for_the_slots_every_instance_took() {
        let rate = Rate {
            max: 4,
            interval: Duration::from_millis(100),
        };
        let now = 1_000;
        assert_eq!(shared_room(&[], rate, 2, now), (4, Duration::ZERO));
        // Three slots of other instances, taken at 930, 940 and 950; one aged out (850).
        let stamps = [850, 930, 940, 950];
        assert_eq!(shared_room(&stamps, rate, 1, now), (1, Duration::ZERO));
        assert_eq!(
            shared_room(&stamps, rate, 2, now),
            (1, Duration::from_millis(30))
        );
        assert_eq!(
            shared_room(&stamps, rate, 4, now),
            (1, Duration::from_millis(50))
        );
    }

    /// A day one budget spent is read by another on the same record, after at most DAY_LOOK.
    #[test]
    fn a_spent_day_is_read_by_every_budget_on_the_record() {
        #[derive(Default)]
        struct Record(Mutex<Option<i64>>);
        impl DailyRecord for Record {
            fn spend_day(&self, _: &str, until_ms: i64) -> anyhow::Result<()> {
                *self.0.lock().unwrap() = Some(until_ms);
                Ok(())
            }
            fn day_spent_until(&self, _: &str, now_ms: i64) -> anyhow::Result<Option<i64>> {
                Ok(self.0.lock().unwrap().filter(|&u| u > now_ms))
            }
        }
        let record = Arc::new(Record::default());
        let a = RateBudget::new(Rate::OAUTH_APP).with_daily_record(record.clone(), "portal 1");
        let b = RateBudget::new(Rate::OAUTH_APP).with_daily_record(record, "portal 1");
        assert_eq!(b.day_spent_until(100), None);
        a.spend_day(5_000);
        assert_eq!(a.day_spent_until(100), Some(5_000));
        assert_eq!(a.day_spent_until(5_000), None, "over at the reset");
        // b read the record a moment ago: it learns at its next look.
        *b.day.as_ref().unwrap().known.lock().unwrap() = None;
        assert_eq!(b.day_spent_until(100), Some(5_000));
    }

    #[test]
    fn rates_parse_from_the_command_line_form() {
        assert_eq!(Rate::parse("110/10000").unwrap(), Rate::OAUTH_APP);
        assert!(Rate::parse("0/10").is_err());
        assert!(Rate::parse("110").is_err());
    }
}
