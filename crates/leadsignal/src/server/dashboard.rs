//! `/`: the operator's page, server-rendered HTML with inline SVG charts (no
//! JavaScript), readable on a phone. Every figure carries a `data-figure`
//! attribute so that a test can compare it with the store. `/sandbox`: what
//! the sandbox received, like Meta's Test Events tab.

use super::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use leadsignal_store::{Activity, Status};
use std::fmt::Write as _;
use std::sync::Arc;

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ago(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.0}%", n as f64 * 100.0 / of as f64)
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:12px;max-width:960px;color:#1c1e21;background:#f5f6f7}\
h1{font-size:1.3em;margin:4px 0 12px}h2{font-size:1.05em;margin:0 0 8px}\
section{background:#fff;border-radius:8px;padding:12px;margin-bottom:12px;box-shadow:0 1px 2px #0002}\
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #e4e6eb;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.banner{padding:10px;border-radius:8px;margin-bottom:12px;font-weight:600}\
.paused{background:#fa383e;color:#fff}.warn{background:#f7b928}.ok{color:#31a24c}svg{max-width:100%;height:auto}\
.err{font-family:monospace;font-size:.85em;word-break:break-word}";

/// The dashboard.
pub(crate) async fn page(State(st): State<Arc<AppState>>) -> Response {
    let now = crate::clock::unix_now();
    let data = st
        .read(move |s| Ok((s.status(now)?, s.activity(now)?)))
        .await;
    match data {
        Ok((status, activity)) => Html(render(&st, &status, &activity, now)).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(format!("<p>the outbox cannot be read: {}</p>", esc(&e))),
        )
            .into_response(),
    }
}

fn render(st: &AppState, s: &Status, a: &Activity, now: i64) -> String {
    let dataset = &st.pc.dataset_id;
    let mut h = String::with_capacity(16 << 10);
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>leadsignal · {ds}</title><style>{STYLE}</style></head><body>\
         <h1>leadsignal · dataset <span data-figure=dataset>{ds}</span></h1>",
        ds = esc(dataset)
    );
    for p in &s.paused {
        let _ = write!(
            h,
            "<div class=\"banner paused\" data-figure=paused>Delivery PAUSED for dataset {} since {} ago: {}. Nothing is lost; fix the token or permissions and it resumes by itself.</div>",
            esc(&p.dataset_id),
            ago(now - p.since),
            esc(&p.reason)
        );
    }
    for w in &s.warnings {
        let _ = write!(
            h,
            "<div class=\"banner warn\" data-figure=warning>{}</div>",
            esc(w)
        );
    }
    // Summary.
    let sent = s.by_state.get("sent").copied().unwrap_or(0);
    let _ = write!(
        h,
        "<section><h2>Delivery</h2><table>\
         <tr><td>last successful upload</td><td class=n data-figure=last-upload>{}</td></tr>\
         <tr><td>leads</td><td class=n data-figure=leads>{}</td></tr>\
         <tr><td>events accepted by Meta</td><td class=n data-figure=sent>{sent}</td></tr>\
         <tr><td>waiting (pending, held, being sent)</td><td class=n data-figure=unsent>{}</td></tr>",
        s.last_sent_at
            .map_or("never".into(), |t| format!("{} ago", ago(now - t))),
        s.leads,
        s.unsent()
    );
    for (state, n) in &s.by_state {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n data-figure=\"state-{}\">{n}</td></tr>",
            esc(state),
            esc(state)
        );
    }
    h.push_str("</table></section>");
    // Funnel.
    h.push_str("<section><h2>Funnel</h2>");
    let specs = st.pc.funnel.stages();
    let stages: Vec<(String, u64, u64)> = specs
        .iter()
        .map(|spec| {
            let name = spec.name.to_string();
            let by = s.by_stage.get(&name);
            let total = by.map_or(0, |m| m.values().sum());
            let sent = by.and_then(|m| m.get("sent")).copied().unwrap_or(0);
            (name, total, sent)
        })
        .collect();
    let max = stages.iter().map(|s| s.1).max().unwrap_or(0).max(1);
    let row_h = 26;
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 600 {}\" role=img aria-label=\"leads per stage\">",
        stages.len() * row_h + 4
    );
    for (i, (name, total, sent)) in stages.iter().enumerate() {
        let y = i * row_h + 2;
        let w = (*total as f64 / max as f64 * 380.0).round();
        let ws = (*sent as f64 / max as f64 * 380.0).round();
        let _ = write!(
            h,
            "<text x=0 y={ty} font-size=12>{n}</text>\
             <rect x=170 y={y} width={w} height=20 fill=\"#c9dcf5\"/>\
             <rect x=170 y={y} width={ws} height=20 fill=\"#1877f2\"/>\
             <text x={tx} y={ty} font-size=12>{total}</text>",
            ty = y + 15,
            n = esc(name),
            tx = 175.0 + w,
        );
    }
    h.push_str("</svg><table><tr><th>stage</th><th>leads</th><th>sent</th><th>moves on</th></tr>");
    for (i, (name, total, sent)) in stages.iter().enumerate() {
        // The share that reaches the next step of the progression (outcomes
        // such as disqualified are not steps).
        let next = (!specs[i].terminal)
            .then(|| (i + 1..stages.len()).find(|&j| !specs[j].terminal))
            .flatten()
            .map(|j| stages[j].1);
        let _ = write!(
            h,
            "<tr><td>{n}</td><td class=n data-figure=\"stage-{n}\">{total}</td><td class=n data-figure=\"stage-sent-{n}\">{sent}</td><td class=n>{}</td></tr>",
            next.map_or("".into(), |x| pct(x, *total)),
            n = esc(name),
        );
    }
    h.push_str("</table><p>dark: accepted by Meta; light: known.</p></section>");
    // Delivery states over time: what left the queue each hour, stacked.
    h.push_str("<section><h2>Delivery states per hour, last 7 days</h2>");
    let hours = 7 * 24;
    let start = (now / 3600 - hours + 1) * 3600;
    const COLORS: [(&str, &str); 3] = [
        ("sent", "#31a24c"),
        ("quarantined", "#fa383e"),
        ("expired", "#8d949e"),
    ];
    let mut per_hour: std::collections::BTreeMap<i64, [u64; 3]> = Default::default();
    let mut totals = [0u64; 3];
    for (hour, state, n) in &a.settled_per_hour {
        if let Some(k) = COLORS.iter().position(|(s, _)| s == state) {
            totals[k] += n;
            if *hour >= start {
                per_hour.entry(*hour).or_default()[k] += n;
            }
        }
    }
    let peak = per_hour
        .values()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 {} 104\" role=img aria-label=\"delivery states per hour\">",
        hours * 4
    );
    for (hour, counts) in &per_hour {
        let x = (hour - start) / 3600 * 4;
        let mut y = 102.0;
        for (k, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let bh = (n as f64 / peak as f64 * 100.0).max(1.0);
            y -= bh;
            let _ = write!(
                h,
                "<rect x={x} y={y:.0} width=3 height={bh:.0} fill=\"{}\"><title>{n} {}</title></rect>",
                COLORS[k].1, COLORS[k].0
            );
        }
    }
    let _ = write!(
        h,
        "<line x1=0 y1=102 x2={} y2=102 stroke=\"#8d949e\"/></svg><p>In 7 days: <span data-figure=sent-week>{}</span> accepted (green), <span data-figure=quarantined-week>{}</span> rejected by Meta (red), <span data-figure=expired-week>{}</span> expired (grey); peak {peak} in an hour.</p></section>",
        hours * 4,
        totals[0],
        totals[1],
        totals[2]
    );
    // Near the cutoff.
    let _ = write!(
        h,
        "<section><h2>Close to the 7-day cutoff</h2><p><span data-figure=near-cutoff>{}</span> unsent events expire within 24 hours.</p>",
        a.near_cutoff_count
    );
    if !a.near_cutoff.is_empty() {
        h.push_str("<table><tr><th>stage</th><th>lead</th><th>expires in</th></tr>");
        for (stage, send_by, lead) in &a.near_cutoff {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=n>{}</td></tr>",
                esc(stage),
                esc(lead),
                ago((send_by - now).max(0))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
    // Errors.
    h.push_str("<section><h2>Latest errors</h2>");
    if a.latest_errors.is_empty() {
        h.push_str("<p class=ok>none</p>");
    } else {
        h.push_str("<table><tr><th>stage</th><th>state</th><th>Meta's answer (code, subcode, fbtrace_id)</th></tr>");
        for (stage, state, err) in &a.latest_errors {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=err data-figure=error>{}</td></tr>",
                esc(stage),
                esc(state),
                esc(err)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
    // Match keys.
    let c = &a.coverage;
    let _ = write!(
        h,
        "<section><h2>Match keys (last 7 days, {ev} events)</h2><table>\
         <tr><td>lead_id</td><td class=n data-figure=cov-lead_id>{}</td></tr>\
         <tr><td>of which recovered by e-mail or phone</td><td class=n data-figure=cov-recovered>{}</td></tr>\
         <tr><td>email (em)</td><td class=n data-figure=cov-em>{}</td></tr>\
         <tr><td>phone (ph)</td><td class=n data-figure=cov-ph>{}</td></tr>\
         <tr><td>click ID (fbc)</td><td class=n data-figure=cov-fbc>{}</td></tr></table>",
        pct(c.lead_id, c.events),
        pct(c.lead_id_recovered, c.events),
        pct(c.em, c.events),
        pct(c.ph, c.events),
        pct(c.fbc, c.events),
        ev = c.events
    );
    let peak = c.keys_histogram.iter().copied().max().unwrap_or(0).max(1);
    h.push_str("<svg viewBox=\"0 0 440 120\" role=img aria-label=\"match keys per event\">");
    for (k, &n) in c.keys_histogram.iter().enumerate() {
        let bh = n as f64 / peak as f64 * 90.0;
        let x = k * 40;
        let label = if k == 10 {
            "10+".to_string()
        } else {
            k.to_string()
        };
        let _ = write!(
            h,
            "<rect x={x} y={:.0} width=32 height={bh:.0} fill=\"#1877f2\"><title>{n}</title></rect><text x={} y=114 font-size=11>{label}</text>",
            96.0 - bh,
            x + 10
        );
    }
    h.push_str("</svg><p>events by number of match keys</p>");
    let m = &c.matchable_histogram;
    let _ = write!(
        h,
        "<p>by keys Meta matches leads on (lead_id, em, ph, fbc): none <span data-figure=matchable-0>{}</span>, one <span data-figure=matchable-1>{}</span>, two or more <span data-figure=matchable-2plus>{}</span></p></section>",
        m.first().copied().unwrap_or(0),
        m.get(1).copied().unwrap_or(0),
        m.iter().skip(2).sum::<u64>()
    );
    if st.sandbox_url.is_some() {
        h.push_str("<p><a href=\"/sandbox\">What the sandbox received</a></p>");
    }
    h.push_str("</body></html>");
    h
}

/// What the sandbox received (when `[server] sandbox_page` is on).
pub(crate) async fn sandbox_page(State(st): State<Arc<AppState>>) -> Response {
    let Some(url) = st.sandbox_url.clone() else {
        return (StatusCode::NOT_FOUND, "no sandbox configured").into_response();
    };
    let list = async {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/sandbox/events?limit=200",
                url.trim_end_matches('/')
            ))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(body)
    };
    let body = match list.await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                Html(format!(
                    "<p>the sandbox cannot be read: {}</p>",
                    esc(&e.to_string())
                )),
            )
                .into_response()
        }
    };
    let mut h = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>sandbox</title><style>{STYLE}</style></head><body><h1>What the sandbox received</h1><section><p><span data-figure=sandbox-total>{}</span> events accepted; the latest:</p><table><tr><th>event</th><th>time</th><th>lead_id</th><th>test code</th><th>fbtrace_id</th></tr>",
        body["total"]
    );
    for e in body["events"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=err>{}</td></tr>",
            esc(e["event_name"].as_str().unwrap_or("")),
            e["event_time"],
            e["lead_id"]
                .as_u64()
                .map_or(String::new(), |l| l.to_string()),
            esc(e["test_event_code"].as_str().unwrap_or("")),
            esc(e["fbtrace_id"].as_str().unwrap_or(""))
        );
    }
    h.push_str("</table></section><p><a href=\"/\">back</a></p></body></html>");
    Html(h).into_response()
}
