//! SVG charts drawn with `plotters` (its SVG backend only: no font library, no bitmap), shared
//! by the dashboard and the CLI: an analysis metric's measurements over time, and a simulated
//! rollout's timeline (setWeight, actual weight, each ReplicaSet's ready pods).
//!
//! Pure functions from data to SVG text. Every text drawn is escaped by the backend, so an
//! SVG can go into a page as it is. Points are capped: a run may hold thousands of
//! measurements and a simulation thousands of entries, and a chart of more points than it
//! has pixels shows nothing more.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rollouts_core::sim::scenario::Command;
use rollouts_core::sim::{Entry, Scenario};
use rollouts_core::time::Seconds;

/// At most this many points per series (consecutive repeats are dropped first, then an even
/// sample is kept, with the last point).
pub const MAX_POINTS: usize = 400;
/// At most this many ReplicaSets per rollout on a timeline (the newest revisions).
pub const MAX_REPLICA_SETS: usize = 8;
/// At most this many rollouts on one timeline (a scenario may hold more).
pub const MAX_ROLLOUTS: usize = 4;
/// At most this many scripted events marked on a timeline.
pub const MAX_EVENT_MARKS: usize = 40;

const METRIC_SIZE: (u32, u32) = (720, 260);
const TIMELINE_SIZE: (u32, u32) = (960, 360);
/// Room right of the plot for the legend, so that it never hides a point.
const LEGEND_WIDTH: u32 = 130;
const FONT: &str = "sans-serif";

/// One measurement of a metric, as a chart needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// Seconds since the run's first measurement started.
    pub t: f64,
    /// The value, when the provider's answer reads as a number.
    pub value: Option<f64>,
    /// The measurement's phase (`Successful`, `Failed`, `Inconclusive`, `Error`, `Running`).
    pub phase: String,
}

/// The first number of a recorded measurement value: `0.99`, `[0.99]`, `[0.99 0.98]`
/// (Go's print of a vector), `"12"`; `None` for anything else.
pub fn numeric_value(recorded: &str) -> Option<f64> {
    let inner = recorded.trim().trim_start_matches('[').trim_end_matches(']').trim().trim_matches('"');
    let first = inner.split(|c: char| c.is_whitespace() || c == ',').find(|s| !s.is_empty())?;
    first.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A chart of one metric's measurements over time: the numeric values as a line, and each
/// measurement marked in its phase's colour (a measurement without a number sits on the
/// lower edge, so a failed or errored one still shows).
pub fn metric_chart(metric: &str, points: &[MetricPoint]) -> String {
    render(METRIC_SIZE, |root| draw_metric(root, metric, points))
}

/// The timeline of a simulation (`entries` as `rollouts simulate` produces them, `end` the
/// second it stopped): per rollout setWeight and actual weight (percent, left axis) and the
/// ready pods of each ReplicaSet (right axis), each a step line. Series of another rollout
/// are named after it when the timeline holds more than one. `events` (second, what) are
/// marked as thin vertical lines: what the user did, so the steps read against it.
pub fn timeline_chart(entries: &[Entry], end: i64, events: &[(i64, String)]) -> String {
    render(TIMELINE_SIZE, |root| draw_timeline(root, entries, end, events))
}

/// The scripted events of a scenario as [`timeline_chart`] marks them: `(second, "promote demo")`.
pub fn scenario_events(scenario: &Scenario) -> Vec<(i64, String)> {
    scenario
        .events
        .iter()
        .filter_map(|e| {
            let what = match e.command().ok()? {
                Command::SetImage(_) => "set image",
                Command::Promote(p) if p.full => "promote --full",
                Command::Promote(_) => "promote",
                Command::Abort(_) => "abort",
                Command::Retry(_) => "retry",
                Command::Pause(_) => "pause",
                Command::Resume(_) => "resume",
                Command::Restart(_) => "restart",
                Command::Undo(_) => "undo",
                Command::Scale(_) => "scale",
                Command::Apply(_) => "apply",
                Command::Delete(_) => "delete",
                Command::Terminate(_) => "terminate",
            };
            Some((e.at.0, what.to_string()))
        })
        .collect()
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn render(size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult) -> String {
    let mut svg = String::new();
    let outcome = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root).and_then(|()| root.present().map_err(Into::into))
    };
    match outcome {
        Ok(()) => svg,
        // Drawing into a string has no I/O to fail; a plotting bug still yields a valid SVG.
        Err(e) => message_svg(size, &format!("cannot draw the chart: {e}")),
    }
}

fn message_svg(size: (u32, u32), text: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let _ = say(&root, text);
        let _ = root.present();
    }
    svg
}

/// A chart with nothing to draw says so.
fn say(root: &DrawingArea<SVGBackend, Shift>, text: &str) -> DrawResult {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    let style = TextStyle::from((FONT, 16).into_font()).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new(text.to_string(), (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

fn phase_colour(phase: &str) -> RGBColor {
    match phase {
        "Successful" => RGBColor(46, 160, 67),
        "Failed" => RGBColor(207, 34, 46),
        "Inconclusive" => RGBColor(212, 140, 0),
        "Error" => RGBColor(110, 110, 110),
        _ => RGBColor(9, 105, 218),
    }
}

fn draw_metric(root: &DrawingArea<SVGBackend, Shift>, metric: &str, points: &[MetricPoint]) -> DrawResult {
    if points.is_empty() {
        return say(root, &format!("{metric}: no measurements yet"));
    }
    root.fill(&WHITE)?;
    let points = sample(points, MAX_POINTS);
    let values: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    let (low, high) = padded_range(&values);
    let t_end = points.iter().map(|p| p.t).fold(0.0, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption(metric, (FONT, 15))
        .margin(10)
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(34)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..t_end * 1.02, low..high)?;
    chart
        .configure_mesh()
        .x_desc("time since the first measurement")
        .y_desc("value")
        .x_label_formatter(&|t| time_label(*t, t_end))
        .label_style((FONT, 11))
        .draw()?;
    let mut keys: Vec<(String, Key)> = Vec::new();
    let line: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.t, p.value?))).collect();
    if !line.is_empty() {
        let style = RGBColor(9, 105, 218).stroke_width(2);
        chart.draw_series(LineSeries::new(line, style))?;
        keys.push(("value".to_string(), Key::Line(style)));
    }
    // One series per phase, in a fixed order, so the legend reads the same every time.
    let mut by_phase: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &points {
        by_phase.entry(p.phase.as_str()).or_default().push((p.t, p.value.unwrap_or(low)));
    }
    for (phase, marks) in by_phase {
        let colour = phase_colour(phase);
        let label = if phase.is_empty() { "Pending".to_string() } else { phase.to_string() };
        chart.draw_series(marks.into_iter().map(move |xy| Circle::new(xy, 4, colour.filled())))?;
        keys.push((label, Key::Dot(colour)));
    }
    if values.is_empty() {
        let (w, _) = root.dim_in_pixel();
        let style = TextStyle::from((FONT, 13).into_font()).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new("no numeric values", (w as i32 / 2, 30), style))?;
    }
    legend(root, &keys)
}

/// A time axis label: whole seconds in the human form, tenths on a short axis (whose ticks
/// fall between seconds).
fn time_label(t: f64, span: f64) -> String {
    if span < 20.0 {
        format!("{t:.1}s")
    } else {
        Seconds(t.round() as i64).human()
    }
}

/// How a series looks in the legend.
#[derive(Clone, Copy)]
enum Key {
    Line(ShapeStyle),
    Dot(RGBColor),
}

/// The legend, in the room kept right of the plot (plotters' own legend sits inside the
/// plot, over the points).
fn legend(root: &DrawingArea<SVGBackend, Shift>, keys: &[(String, Key)]) -> DrawResult {
    let x = (root.dim_in_pixel().0 - LEGEND_WIDTH) as i32 + 8;
    let style = TextStyle::from((FONT, 11).into_font()).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (name, key)) in keys.iter().enumerate() {
        let y = 40 + 16 * i as i32;
        match *key {
            Key::Line(line) => root.draw(&PathElement::new(vec![(x, y), (x + 16, y)], line))?,
            Key::Dot(colour) => root.draw(&Circle::new((x + 8, y), 4, colour.filled()))?,
        }
        root.draw(&Text::new(name.clone(), (x + 22, y), style.clone()))?;
    }
    Ok(())
}

/// `lo..hi` around `values`, a little wider so points do not sit on the frame.
fn padded_range(values: &[f64]) -> (f64, f64) {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    if (high - low).abs() < f64::EPSILON {
        let pad = if low.abs() < 1.0 { 1.0 } else { low.abs() * 0.1 };
        return (low - pad, high + pad);
    }
    let pad = (high - low) * 0.08;
    (low - pad, high + pad)
}

/// At most `cap` items: an even sample that keeps the first and the last.
fn sample<T: Clone>(items: &[T], cap: usize) -> Vec<T> {
    if items.len() <= cap || cap < 2 {
        return items.to_vec();
    }
    let last = items.len() - 1;
    (0..cap).map(|i| items[i * last / (cap - 1)].clone()).collect()
}

/// A value that holds until the next change, as the points of a step line ending at `end`:
/// repeats dropped, then capped.
fn step_line(changes: &[(f64, f64)], end: f64) -> Vec<(f64, f64)> {
    let mut kept: Vec<(f64, f64)> = Vec::new();
    for &(t, v) in changes {
        match kept.last_mut() {
            Some(last) if last.0 == t => last.1 = v,
            Some(last) if last.1 == v => {}
            _ => kept.push((t, v)),
        }
    }
    let kept = sample(&kept, MAX_POINTS / 2);
    let mut out = Vec::with_capacity(kept.len() * 2 + 1);
    for (i, &(t, v)) in kept.iter().enumerate() {
        out.push((t, v));
        let next = kept.get(i + 1).map_or(end, |n| n.0);
        out.push((next, v));
    }
    out
}

struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    /// Drawn wide and pale (the setWeight).
    wide: bool,
}

fn palette(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLOURS[i % COLOURS.len()]
}

/// The lines of a timeline: weights (left axis) and pods (right axis).
fn timeline_lines(entries: &[Entry], end: f64) -> (Vec<Line>, Vec<Line>) {
    let mut rollouts: Vec<&str> = Vec::new();
    for e in entries {
        if !rollouts.contains(&e.rollout.as_str()) && rollouts.len() < MAX_ROLLOUTS {
            rollouts.push(&e.rollout);
        }
    }
    let several = rollouts.len() > 1;
    let (mut weights, mut pods) = (Vec::new(), Vec::new());
    let mut colour = 0;
    for rollout in rollouts {
        let rows: Vec<&Entry> = entries.iter().filter(|e| e.rollout == rollout).collect();
        let name = |what: String| if several { format!("{rollout} {what}") } else { what };
        let set: Vec<(f64, f64)> = rows.iter().filter_map(|e| Some((e.t as f64, f64::from(e.set_weight?)))).collect();
        if !set.is_empty() {
            weights.push(Line { name: name("setWeight".into()), points: step_line(&set, end), colour: palette(colour), wide: true });
            colour += 1;
        }
        let actual: Vec<(f64, f64)> = rows.iter().map(|e| (e.t as f64, f64::from(e.actual_weight))).collect();
        weights.push(Line { name: name("actual weight".into()), points: step_line(&actual, end), colour: palette(colour), wide: false });
        colour += 1;
        // A rollout's own ReplicaSets, newest revisions first; an Experiment's are its own rows.
        let mut revisions: Vec<i64> = rows
            .iter()
            .flat_map(|e| e.replica_sets.iter().filter(|r| r.role != "experiment").map(|r| r.revision))
            .collect();
        revisions.sort_unstable_by(|a, b| b.cmp(a));
        revisions.dedup();
        revisions.truncate(MAX_REPLICA_SETS);
        revisions.sort_unstable();
        for revision in revisions {
            let ready: Vec<(f64, f64)> = rows
                .iter()
                .map(|e| {
                    let n = e.replica_sets.iter().find(|r| r.revision == revision && r.role != "experiment").map_or(0, |r| r.ready);
                    (e.t as f64, f64::from(n))
                })
                .collect();
            pods.push(Line { name: name(format!("r{revision} ready pods")), points: step_line(&ready, end), colour: palette(colour), wide: false });
            colour += 1;
        }
    }
    (weights, pods)
}

fn draw_timeline(root: &DrawingArea<SVGBackend, Shift>, entries: &[Entry], end: i64, events: &[(i64, String)]) -> DrawResult {
    if entries.is_empty() {
        return say(root, "the simulation produced no timeline");
    }
    root.fill(&WHITE)?;
    let last = entries.iter().map(|e| e.t).max().unwrap_or(0);
    // A little room after the last change, so that it shows as a step and not as the frame.
    let end = end.max(last).max(1) as f64 * 1.04;
    let (weights, pods) = timeline_lines(entries, end);
    let most_pods = pods.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption("simulated timeline", (FONT, 15))
        .margin(10)
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(34)
        .y_label_area_size(48)
        .right_y_label_area_size(48)
        .build_cartesian_2d(0.0..end, 0.0..105.0)?
        .set_secondary_coord(0.0..end, 0.0..(most_pods + 1.0).ceil());
    chart
        .configure_mesh()
        .x_desc("time")
        .y_desc("weight %")
        .x_label_formatter(&|t| time_label(*t, end))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 11))
        .draw()?;
    chart.configure_secondary_axes().y_desc("ready pods").y_label_formatter(&|v| format!("{v:.0}")).label_style((FONT, 11)).draw()?;
    // Black and pale, under the series: an axis-like line, not a series.
    let mark = BLACK.mix(0.35).stroke_width(1);
    let label = TextStyle::from((FONT, 10).into_font()).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Top));
    for (i, (t, what)) in events.iter().take(MAX_EVENT_MARKS).enumerate() {
        let x = *t as f64;
        chart.draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, 105.0)], mark)))?;
        // Three rows of labels, so that events close together stay readable.
        let row = 104.0 - 4.0 * (i % 3) as f64;
        chart.draw_series(std::iter::once(Text::new(what.clone(), (x, row), label.clone())))?;
    }
    let mut keys: Vec<(String, Key)> = Vec::new();
    for line in weights {
        // The weight asked for is a wide pale band under the weight reached: where they agree
        // both still show. One polyline per series, so a reader (or a test) can count them.
        let style = if line.wide { line.colour.mix(0.45).stroke_width(5) } else { line.colour.stroke_width(2) };
        chart.draw_series(LineSeries::new(line.points, style))?;
        keys.push((line.name, Key::Line(style)));
    }
    for line in pods {
        let style = line.colour.stroke_width(1);
        chart.draw_secondary_series(LineSeries::new(line.points, style))?;
        keys.push((line.name, Key::Line(style)));
    }
    legend(root, &keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollouts_core::sim::timeline::RsEntry;

    fn point(t: f64, value: Option<f64>, phase: &str) -> MetricPoint {
        MetricPoint { t, value, phase: phase.into() }
    }

    #[test]
    fn recorded_values_read_as_their_first_number() {
        assert_eq!(numeric_value("0.99"), Some(0.99));
        assert_eq!(numeric_value("[0.97 0.5]"), Some(0.97));
        assert_eq!(numeric_value("[12]"), Some(12.0));
        assert_eq!(numeric_value("\"3\""), Some(3.0));
        assert_eq!(numeric_value("map[a:1]"), None);
        assert_eq!(numeric_value(""), None);
        assert_eq!(numeric_value("NaN"), None);
    }

    #[test]
    fn a_metric_chart_has_the_values_line_a_series_per_phase_and_its_axes() {
        let svg = metric_chart(
            "success-rate",
            &[point(0.0, Some(0.99), "Successful"), point(10.0, Some(0.42), "Failed"), point(20.0, None, "Error")],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["success-rate", "value", "Successful", "Failed", "Error", "time since the first measurement", "10s"] {
            assert!(svg.contains(&format!(">\n{text}\n<")) || svg.contains(&format!(">{text}<")), "no {text:?} in {svg}");
        }
        // The three marks, and the legend's.
        assert_eq!(svg.matches("<circle").count(), 3 + 3, "{svg}");
        assert!(svg.contains("<polyline"), "the values are a line: {svg}");
        // The failed point in the failed colour.
        assert!(svg.contains("#CF222E"), "{svg}");
    }

    #[test]
    fn a_chart_of_no_measurements_says_so() {
        let svg = metric_chart("latency", &[]);
        assert!(svg.starts_with("<svg") && svg.contains("latency: no measurements yet"), "{svg}");
        let svg = metric_chart("job", &[point(0.0, None, "Successful")]);
        assert!(svg.contains("no numeric values"), "{svg}");
        assert!(timeline_chart(&[], 0, &[]).contains("the simulation produced no timeline"));
    }

    #[test]
    fn text_from_the_cluster_is_escaped() {
        let svg = metric_chart("<script>x</script>", &[point(0.0, Some(1.0), "Successful")]);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"), "{svg}");
    }

    #[test]
    fn points_are_capped() {
        let many: Vec<MetricPoint> = (0..5_000).map(|i| point(f64::from(i), Some(f64::from(i % 7)), "Successful")).collect();
        let svg = metric_chart("busy", &many);
        assert_eq!(svg.matches("<circle").count(), MAX_POINTS + 1, "capped marks plus the legend's");
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        let sampled = sample(&many, MAX_POINTS);
        assert_eq!((sampled.first(), sampled.last()), (many.first(), many.last()));
    }

    #[test]
    fn a_step_line_holds_each_value_until_the_next_change() {
        assert_eq!(
            step_line(&[(0.0, 0.0), (5.0, 0.0), (10.0, 20.0), (10.0, 40.0)], 30.0),
            [(0.0, 0.0), (10.0, 0.0), (10.0, 40.0), (30.0, 40.0)]
        );
    }

    fn entry(t: i64, set_weight: i32, actual: i32, sets: &[(i64, i32)]) -> Entry {
        Entry {
            t,
            at: Seconds(t).human(),
            rollout: "demo".into(),
            phase: "Progressing".into(),
            message: String::new(),
            current_step_index: Some(0),
            step_count: 2,
            set_weight: Some(set_weight),
            actual_weight: actual,
            stable_hash: String::new(),
            canary_hash: String::new(),
            pause_conditions: Vec::new(),
            aborted: false,
            replica_sets: sets
                .iter()
                .map(|&(revision, ready)| RsEntry {
                    name: format!("demo-{revision}"),
                    hash: revision.to_string(),
                    revision,
                    role: if revision == 1 { "stable".into() } else { "canary".into() },
                    desired: ready,
                    ready,
                    available: ready,
                    images: Vec::new(),
                })
                .collect(),
            analysis_runs: Vec::new(),
            experiments: Vec::new(),
            weights: None,
        }
    }

    #[test]
    fn a_timeline_has_weights_and_a_pods_line_per_replica_set() {
        let entries = [entry(0, 100, 100, &[(1, 4)]), entry(30, 25, 0, &[(2, 1), (1, 4)]), entry(32, 25, 20, &[(2, 1), (1, 3)])];
        let svg = timeline_chart(&entries, 60, &[(30, "set image".into())]);
        for text in ["setWeight", "actual weight", "r1 ready pods", "r2 ready pods", "weight %", "ready pods", "30s"] {
            assert!(svg.contains(&format!(">\n{text}\n<")) || svg.contains(&format!(">{text}<")), "no {text:?} in {svg}");
        }
        // Four series, each drawn once and once in the legend (the axes are the black lines).
        assert_eq!(series_lines(&svg), 8, "{svg}");
        assert!(svg.contains("opacity=\"0.45\""), "the setWeight band: {svg}");
        assert!(svg.contains("\nset image\n") && svg.contains("opacity=\"0.35\""), "the event is marked: {svg}");
    }

    fn series_lines(svg: &str) -> usize {
        svg.lines().filter(|l| l.starts_with("<polyline") && !l.contains("stroke=\"#000000\"")).count()
    }

    #[test]
    fn several_rollouts_name_their_series() {
        let mut other = entry(0, 100, 100, &[(1, 2)]);
        other.rollout = "other".into();
        let svg = timeline_chart(&[entry(0, 100, 100, &[(1, 4)]), other], 10, &[]);
        assert!(svg.contains("demo setWeight") && svg.contains("other r1 ready pods"), "{svg}");
    }
}
