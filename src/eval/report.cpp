#include "eval/report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace sanastream::eval {

namespace {

std::string name_of(const std::string& path) { return path == "-" ? "stdin" : path; }

nlohmann::json video_json(const VideoFigures& v) {
  return {{"warp_error", v.warp_error},
          {"flicker_index", v.flicker_index},
          {"path", v.info.path},
          {"width", v.info.width},
          {"height", v.info.height},
          {"fps", v.info.fps()},
          {"codec", v.info.codec}};
}

nlohmann::json pair_json(const PairRecord& p, bool last, bool has_target) {
  nlohmann::json j = {{"index", p.index},
                      {"time", p.time},
                      {"source_index", p.source_index},
                      {"source_time", p.source_time},
                      {"edge_ssim", p.edge_ssim}};
  if (has_target) {
    j["target_index"] = p.target_index;
    j["target_time"] = p.target_time;
    j["psnr"] = p.psnr;
    j["ssim"] = p.ssim;
    j["source_psnr"] = p.source_psnr;
    j["colour_error"] = p.colour_error;
  }
  if (!last) {  // the transition to the next pair
    j["warp_error"] = p.warp_error;
    j["source_warp_error"] = p.source_warp_error;
    j["counted_fraction"] = p.counted_fraction;
    j["flicker"] = p.flicker;
    j["source_flicker"] = p.source_flicker;
    if (has_target) {
      j["target_warp_error"] = p.target_warp_error;
      j["target_flicker"] = p.target_flicker;
    }
  }
  return j;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fixed(double v, int digits) { return std::isnan(v) ? "n/a" : fmt::format("{:.{}f}", v, digits); }

// A run entry as text: scalars as they are, objects and arrays as compact JSON (shortened).
std::string run_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  std::string s = v.dump();
  if (s.size() > 72) s = s.substr(0, 69) + "...";
  return s;
}

struct Series {
  std::string name;
  std::string css;  // "edited", "source", "target"
  std::vector<double> y;
};

// A line plot as inline SVG: x in seconds, one polyline per series and run of defined values
// (NaN breaks the line; a lone value is a dot).
std::string svg_plot(const std::string& id, const std::string& title, const std::string& y_label,
                     const std::vector<double>& x, const std::vector<Series>& series) {
  constexpr double kW = 720, kH = 240, kLeft = 70, kRight = 110, kTop = 28, kBottom = 40;
  double x0 = x.front(), x1 = x.back();
  if (x1 <= x0) x1 = x0 + 1;
  double y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) {
        y0 = std::min(y0, v);
        y1 = std::max(y1, v);
      }
  if (!std::isfinite(y0)) y0 = 0, y1 = 1;
  const double pad = std::max((y1 - y0) * 0.05, std::max(std::abs(y1) * 0.05, 1e-9));
  y0 = y0 >= 0 ? std::max(0.0, y0 - pad) : y0 - pad;  // non-negative figures keep a non-negative axis
  y1 += pad;
  auto px = [&](double v) { return kLeft + (v - x0) / (x1 - x0) * (kW - kLeft - kRight); };
  auto py = [&](double v) { return kTop + (y1 - v) / (y1 - y0) * (kH - kTop - kBottom); };

  std::string svg = fmt::format(
      "<svg class=\"plot\" id=\"{}\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" "
      "aria-label=\"{}\">\n<text class=\"title\" x=\"{}\" y=\"18\">{}</text>\n",
      id, kW, kH, kW, kH, html_escape(title), kLeft, html_escape(title));
  svg += fmt::format("<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\n", kLeft, kTop,
                     kW - kLeft - kRight, kH - kTop - kBottom);
  for (int k = 0; k <= 4; ++k) {
    const double yv = y0 + (y1 - y0) * k / 4, xv = x0 + (x1 - x0) * k / 4;
    svg += fmt::format("<line class=\"grid\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>", kLeft, py(yv),
                       kW - kRight, py(yv));
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>", kLeft - 6,
                       py(yv) + 4, yv);
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.2f}</text>\n", px(xv),
                       kH - kBottom + 16, xv);
  }
  svg += fmt::format("<text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">time (s)</text>\n",
                     kLeft + (kW - kLeft - kRight) / 2, kH - 6);
  svg += fmt::format(
      "<text class=\"axis\" x=\"14\" y=\"{:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1f})\">{}</text>\n",
      kTop + (kH - kTop - kBottom) / 2, kTop + (kH - kTop - kBottom) / 2, html_escape(y_label));
  int legend = 0;
  for (const Series& s : series) {
    std::vector<std::string> runs(1);
    std::string dots;
    auto close_run = [&] {
      if (runs.back().empty()) return;
      if (runs.back().find(' ') == std::string::npos) {  // a single point
        const size_t comma = runs.back().find(',');
        dots += fmt::format("<circle class=\"point {}\" cx=\"{}\" cy=\"{}\" r=\"2.5\"/>", s.css,
                            runs.back().substr(0, comma), runs.back().substr(comma + 1));
        runs.back().clear();
      } else {
        runs.emplace_back();
      }
    };
    for (size_t i = 0; i < s.y.size() && i < x.size(); ++i) {
      if (!std::isfinite(s.y[i])) {
        close_run();
        continue;
      }
      if (!runs.back().empty()) runs.back() += ' ';
      runs.back() += fmt::format("{:.1f},{:.1f}", px(x[i]), py(s.y[i]));
    }
    close_run();
    for (const std::string& pts : runs)
      if (!pts.empty())
        svg += fmt::format("<polyline class=\"series {}\" data-series=\"{}\" points=\"{}\"/>\n", s.css, s.name, pts);
    svg += dots;
    const double ly = kTop + 10 + 18 * legend++;
    svg += fmt::format(
        "<line class=\"series {}\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\"/><text class=\"legend\" x=\"{}\" "
        "y=\"{:.1f}\">{}</text>\n",
        s.css, kW - kRight + 10, ly, kW - kRight + 34, ly, kW - kRight + 40, ly + 4, html_escape(s.name));
  }
  return svg + "</svg>\n";
}

template <typename F>
std::vector<double> column(const std::vector<PairRecord>& pairs, F f) {
  std::vector<double> out;
  out.reserve(pairs.size());
  for (const PairRecord& p : pairs) out.push_back(f(p));
  return out;
}

const char* kStyle = R"(body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table.summary,table.inputs,table.run{border-collapse:collapse;margin:8px 0}
table.summary td,table.summary th,table.inputs td,table.inputs th,table.run td,table.run th{border:1px solid #ccc;padding:4px 10px;text-align:right}
table.inputs td,table.inputs th,table.run th{text-align:left}
svg.plot{display:block;margin:12px 0;background:#fff}
svg .frame{fill:none;stroke:#999}svg .grid{stroke:#eee}svg .tick,svg .legend{font-size:11px;fill:#444}
svg .axis{font-size:12px;fill:#222}svg .title{font-size:13px;font-weight:600;fill:#222}
svg polyline{fill:none;stroke-width:1.6}svg line.series{stroke-width:2}
.edited{stroke:#1f77b4;fill:#1f77b4}.source{stroke:#7f7f7f;fill:#7f7f7f}.target{stroke:#ff7f0e;fill:#ff7f0e}
svg polyline.edited,svg polyline.source,svg polyline.target{fill:none}
table.strip td{padding:2px;text-align:center;font-size:11px;color:#555}table.strip th{text-align:left;padding-right:8px}
img.thumb{display:block}
)";

}  // namespace

std::string base64_encode(const std::vector<uint8_t>& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const uint32_t v = (bytes[i] << 16) | (two ? bytes[i + 1] << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += two ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

nlohmann::json to_json(const EvalResult& r, const nlohmann::json& run) {
  const bool has_target = r.target.has_value();
  nlohmann::json edited = video_json(r.edited);
  edited["edge_ssim"] = r.edge_ssim;
  if (has_target) {
    edited["psnr"] = r.psnr;
    edited["ssim"] = r.ssim;
    edited["source_psnr"] = r.source_psnr;
    edited["colour_error"] = r.colour_error;
    edited["colour_drift"] = r.colour_drift;
  }
  nlohmann::json frames = nlohmann::json::array();
  for (size_t i = 0; i < r.pairs.size(); ++i) frames.push_back(pair_json(r.pairs[i], i + 1 == r.pairs.size(), has_target));
  edited["frames"] = std::move(frames);
  nlohmann::json source = video_json(r.source);
  source["flow"] = r.flow;
  source["occlusion_check"] = r.flow_backward;
  nlohmann::json j = {{"edited", std::move(edited)}, {"source", std::move(source)}};
  if (has_target) j["target"] = video_json(*r.target);
  j["pairs"] = r.pairs.size();
  if (!run.is_null()) j["run"] = run;
  return j;
}

std::string format_table(const EvalResult& r, const nlohmann::json& run) {
  const bool t = r.target.has_value();
  std::string s = fmt::format("sanastream eval: {} pairs compared at {}×{}\n", r.pairs.size(), r.width, r.height);
  s += fmt::format("  edited  {}  {}\n", name_of(r.edited.info.path), r.edited.info.summary());
  s += fmt::format("  source  {}  {}\n", name_of(r.source.info.path), r.source.info.summary());
  if (t) s += fmt::format("  target  {}  {}\n", name_of(r.target->info.path), r.target->info.summary());
  s += r.flow == "dis" ? std::string("  flow    DIS (medium preset) on the source frames, forward-backward occlusion mask\n")
                       : fmt::format("  flow    {}{}\n", r.flow,
                                     r.flow_backward ? " (flow and flow_bwd: occlusion mask)"
                                                     : " (no flow_bwd: out-of-frame mask only)");
  s += fmt::format("\n  {:<16}{:>12}{:>12}{}\n", "metric", "edited", "source", t ? fmt::format("{:>12}", "target") : "");
  s += fmt::format("  {:<16}{:>12}{:>12}{}\n", "warp error", fixed(r.edited.warp_error, 6), fixed(r.source.warp_error, 6),
                   t ? fmt::format("{:>12}", fixed(r.target->warp_error, 6)) : "");
  s += fmt::format("  {:<16}{:>12}{:>12}{}\n", "flicker index", fixed(r.edited.flicker_index, 6),
                   fixed(r.source.flicker_index, 6), t ? fmt::format("{:>12}", fixed(r.target->flicker_index, 6)) : "");
  s += fmt::format("  {:<16}{:>12}\n", "edge SSIM", fixed(r.edge_ssim, 4));
  if (t) {
    s += fmt::format("  {:<16}{:>12}\n", "PSNR (dB)", fixed(r.psnr, 2));
    s += fmt::format("  {:<16}{:>12}\n", "SSIM", fixed(r.ssim, 4));
    s += fmt::format("  {:<16}{:>12}{:>12}\n", "PSNR vs source", "", fixed(r.source_psnr, 2));
    s += fmt::format("  {:<16}{:>12}\n", "colour error", fixed(r.colour_error, 3));
    s += fmt::format("  {:<16}{:>12}\n", "colour drift", fixed(r.colour_drift, 3));
  }
  if (!run.is_null()) {
    s += "\n  speed (run)\n";
    for (auto it = run.begin(); it != run.end(); ++it) s += fmt::format("  {:<24}{}\n", it.key(), run_value(it.value()));
  }
  return s;
}

std::string render_html(const EvalResult& r, const nlohmann::json& run) {
  const bool t = r.target.has_value();
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>sanastream eval: " +
                  html_escape(name_of(r.edited.info.path)) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  h += "<h1>sanastream eval</h1>\n<table class=\"inputs\">\n";
  auto input_row = [&](const char* role, const VideoFigures& v) {
    h += fmt::format("<tr><th>{}</th><td>{}</td><td>{}</td></tr>\n", role, html_escape(name_of(v.info.path)),
                     html_escape(v.info.summary()));
  };
  input_row("edited", r.edited);
  input_row("source", r.source);
  if (t) input_row("target", *r.target);
  h += fmt::format("<tr><th>flow</th><td colspan=\"2\">{}</td></tr>\n</table>\n",
                   r.flow == "dis" ? std::string("DIS (medium preset) on the source frames, forward-backward occlusion mask")
                                   : html_escape(r.flow) + (r.flow_backward ? " (flow and flow_bwd)" : " (flow only)"));
  h += fmt::format("<p>{} pairs compared at {}×{}. Definitions: docs/METRICS.md.</p>\n", r.pairs.size(), r.width,
                   r.height);

  h += "<h2>Summary</h2>\n<table class=\"summary\" id=\"summary\">\n<tr><th>metric</th><th>edited</th><th>source</th>";
  h += t ? "<th>target</th></tr>\n" : "</tr>\n";
  auto row = [&](const char* name, double e, double s, double tg, int digits, bool per_video) {
    h += fmt::format("<tr><th>{}</th><td>{}</td><td>{}</td>", name, fixed(e, digits),
                     per_video ? fixed(s, digits) : "");
    if (t) h += fmt::format("<td>{}</td>", per_video ? fixed(tg, digits) : "");
    h += "</tr>\n";
  };
  row("warp error", r.edited.warp_error, r.source.warp_error, t ? r.target->warp_error : kNaN, 6, true);
  row("flicker index", r.edited.flicker_index, r.source.flicker_index, t ? r.target->flicker_index : kNaN, 6, true);
  row("edge SSIM (vs source)", r.edge_ssim, kNaN, kNaN, 4, false);
  if (t) {
    row("PSNR (dB, vs target)", r.psnr, kNaN, kNaN, 2, false);
    row("SSIM (vs target)", r.ssim, kNaN, kNaN, 4, false);
  }
  h += "</table>\n";

  if (!run.is_null()) {
    h += "<h2>Speed</h2>\n<table class=\"run\" id=\"run\">\n";
    for (auto it = run.begin(); it != run.end(); ++it)
      h += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", html_escape(it.key()), html_escape(run_value(it.value())));
    h += "</table>\n";
  }

  h += "<h2>Per-frame curves</h2>\n";
  const std::vector<double> x = column(r.pairs, [](const PairRecord& p) { return p.time; });
  auto with_target = [&](std::vector<Series> s, std::vector<double> target_values) {
    if (t) s.push_back({"target", "target", std::move(target_values)});
    return s;
  };
  h += svg_plot("plot-warp", "Warp error, frame i → i+1", "warp error", x,
                with_target({{"edited", "edited", column(r.pairs, [](const PairRecord& p) { return p.warp_error; })},
                             {"source", "source",
                              column(r.pairs, [](const PairRecord& p) { return p.source_warp_error; })}},
                            column(r.pairs, [](const PairRecord& p) { return p.target_warp_error; })));
  h += svg_plot("plot-flicker", "Low-pass luminance change, frame i → i+1", "mean |ΔL|", x,
                with_target({{"edited", "edited", column(r.pairs, [](const PairRecord& p) { return p.flicker; })},
                             {"source", "source", column(r.pairs, [](const PairRecord& p) { return p.source_flicker; })}},
                            column(r.pairs, [](const PairRecord& p) { return p.target_flicker; })));
  h += svg_plot("plot-edge-ssim", "Edge-map SSIM, source vs edited", "edge SSIM", x,
                {{"edited", "edited", column(r.pairs, [](const PairRecord& p) { return p.edge_ssim; })}});
  if (t) {
    h += svg_plot("plot-psnr", "PSNR, edited vs target", "PSNR (dB)", x,
                  {{"edited", "edited", column(r.pairs, [](const PairRecord& p) { return p.psnr; })}});
    h += svg_plot("plot-ssim", "SSIM, edited vs target", "SSIM", x,
                  {{"edited", "edited", column(r.pairs, [](const PairRecord& p) { return p.ssim; })}});
  }

  if (!r.thumbnails.empty()) {
    h += "<h2>Frames</h2>\n<table class=\"strip\" id=\"strip\">\n<tr><th></th>";
    for (const Thumbnail& th : r.thumbnails) {
      const PairRecord& p = r.pairs[th.pair];
      h += fmt::format("<td>frame {}<br>{:.3f} s</td>", p.index, p.time);
    }
    h += "</tr>\n";
    auto strip_row = [&](const char* role, std::vector<uint8_t> Thumbnail::*field) {
      h += fmt::format("<tr class=\"{}\"><th>{}</th>", role, role);
      for (const Thumbnail& th : r.thumbnails)
        h += fmt::format("<td><img class=\"thumb\" alt=\"{} frame for edited frame {}\" src=\"data:image/jpeg;base64,{}\"></td>",
                         role, r.pairs[th.pair].index, base64_encode(th.*field));
      h += "</tr>\n";
    };
    strip_row("source", &Thumbnail::source);
    strip_row("edited", &Thumbnail::edited);
    if (t) strip_row("target", &Thumbnail::target);
    h += "</table>\n";
  }
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace sanastream::eval
