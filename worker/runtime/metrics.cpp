#include "worker/runtime/metrics.hpp"

#include "worker/log/log.hpp"
#include "worker/util/files.hpp"
#include "worker/util/json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>

namespace lethe::runtime {
namespace {

struct Family {
  std::string_view name;
  std::string_view type;
  std::string_view help;
};

// Every family lethe writes. lethe.prom (lethe.metrics(), schema 10) first, then lethe-check.prom.
constexpr std::array k_families{
    Family{"lethe_job_last_success_timestamp_seconds", "gauge",
           "When the job's last successful run ended."},
    Family{"lethe_job_last_failure_timestamp_seconds", "gauge",
           "When the job's last failed, refused or abandoned run ended."},
    Family{"lethe_job_last_duration_seconds", "gauge",
           "How long the job's last finished run took."},
    Family{"lethe_job_runs_total", "counter", "Finished runs of the job, by outcome."},
    Family{"lethe_job_orders_processed_total", "counter",
           "Orders the job's runs sanitized, archived or erased."},
    Family{"lethe_job_rows_processed_total", "counter", "Rows the job's runs sanitized or erased."},
    Family{"lethe_requests_open", "gauge", "Deletion requests not yet complete, by state."},
    Family{"lethe_requests_total", "counter", "Deletion requests registered."},
    Family{
        "lethe_request_deadline_timestamp_seconds", "gauge",
        "The nearest deadline of an open deletion request: live data (72h) or every copy (90d)."},
    Family{"lethe_archives", "gauge", "Archives in the catalog, by state."},
    Family{"lethe_archive_bytes", "gauge", "Bytes of the archives not destroyed, by state."},
    Family{"lethe_archive_newest_timestamp_seconds", "gauge",
           "When the newest archive was written."},
    Family{"lethe_backups", "gauge", "Backups in the catalog, by state."},
    Family{"lethe_backup_bytes", "gauge", "Bytes of the backups not destroyed, by state."},
    Family{"lethe_backup_newest_timestamp_seconds", "gauge", "When the newest backup was written."},
    Family{"lethe_verify_last_timestamp_seconds", "gauge",
           "When archives, backups or the audit trail were last verified."},
    Family{"lethe_verify_last_success", "gauge",
           "1 when the last verify of archives, backups or the audit trail passed, else 0."},
    Family{"lethe_drills_total", "counter", "Restore drills, by result."},
    Family{"lethe_drill_last_success_timestamp_seconds", "gauge",
           "When the last successful restore drill ended."},
    Family{"lethe_drill_last_rto_seconds", "gauge",
           "Recovery time of the last successful restore drill."},
    Family{"lethe_audit_records_total", "counter", "Records in the audit chain."},
    Family{"lethe_alarms_total", "counter", "Alarm records in the audit chain."},
    Family{"lethe_incidents_open", "gauge", "Incidents not closed."},
    Family{"lethe_incidents_notify_overdue", "gauge",
           "Open incidents whose 24-hour notice to Amazon is past and not recorded."},
    Family{"lethe_incident_notify_deadline_timestamp_seconds", "gauge",
           "The nearest 24-hour notice deadline of an open incident not yet notified."},
    Family{"lethe_metrics_generated_timestamp_seconds", "gauge",
           "When lethe wrote this file (database clock)."},
    // lethe-check.prom
    Family{"lethe_pii_overdue_rows", "gauge",
           "Rows holding PII past their deadline and not held, by table."},
    Family{"lethe_pii_held_rows", "gauge",
           "Rows past their deadline held for the archive (regulatory hold), by table."},
    Family{"lethe_pii_overdue_oldest_age_seconds", "gauge",
           "How long the oldest overdue row of the table has been past its deadline."},
    Family{"lethe_held_orders", "gauge", "Orders past their deadline held for the archive."},
    Family{"lethe_schema_drift_alarms", "gauge",
           "Schema changes that could hold PII the map does not reach."},
    Family{"lethe_check_timestamp_seconds", "gauge", "When `lethe check` counted (as of)."},
};

const Family* find_family(std::string_view name) {
  for (const Family& f : k_families) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

} // namespace

std::vector<std::pair<std::string, std::string>> families() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Family& f : k_families) {
    out.emplace_back(f.name, f.type);
  }
  return out;
}

std::string exposition(const std::vector<Sample>& samples) {
  std::map<std::string_view, std::vector<const Sample*>> by_family;
  for (const Sample& s : samples) {
    const Family* f = find_family(s.family);
    if (f == nullptr) {
      throw Error(Exit::internal, "metric family " + s.family + " is not declared",
                  "this is a bug in lethe");
    }
    by_family[f->name].push_back(&s);
  }
  std::string out;
  for (const Family& f : k_families) {
    auto it = by_family.find(f.name);
    if (it == by_family.end()) {
      continue;
    }
    out += "# HELP " + std::string(f.name) + " " + std::string(f.help) + "\n";
    out += "# TYPE " + std::string(f.name) + " " + std::string(f.type) + "\n";
    for (const Sample* s : it->second) {
      out += f.name;
      if (!s->labels.empty()) {
        out += '{';
        for (size_t i = 0; i < s->labels.size(); ++i) {
          out += (i > 0 ? "," : "") + s->labels[i].first + "=\"" +
                 escape_label(s->labels[i].second) + "\"";
        }
        out += '}';
      }
      out += " " + format_value(s->value) + "\n";
    }
  }
  return out;
}

std::vector<Sample> state_samples(db::Session& session) {
  db::Rows r = session.exec("SELECT metric, labels, value FROM lethe.metrics()");
  std::vector<Sample> out;
  for (size_t i = 0; i < r.size(); ++i) {
    Sample s;
    s.family = r.text(i, 0);
    util::Json labels = util::parse_json(r.text(i, 1), "lethe.metrics() labels");
    for (const auto& [k, v] : labels.items()) {
      s.labels.emplace_back(k, v.get<std::string>());
    }
    // By name: jsonb keeps its own key order (shorter keys first).
    std::sort(s.labels.begin(), s.labels.end());
    s.value = r.at(i, 2) ? std::stod(*r.at(i, 2)) : std::nan("");
    out.push_back(std::move(s));
  }
  return out;
}

void write_textfile(const std::filesystem::path& dir, const std::string& file,
                    const std::string& text) {
  util::write_file_atomically(dir / file, text, 0644);
}

void write_state_metrics(Context& ctx) noexcept {
  const std::filesystem::path& dir = ctx.settings().metrics.textfile_dir;
  db::Session* session = ctx.session_if_connected();
  if (dir.empty() || session == nullptr) {
    return;
  }
  try {
    write_textfile(dir, "lethe.prom", exposition(state_samples(*session)));
  } catch (const std::exception& e) {
    // lethe's errors carry no server text; anything else is named by its class only.
    const auto* le = dynamic_cast<const Error*>(&e);
    log::event(log::Level::warning, "metrics.not_written",
               {{"file", (dir / "lethe.prom").string()},
                {"error", le != nullptr ? std::string(le->what()) : std::string("internal")}});
  }
}

} // namespace lethe::runtime
