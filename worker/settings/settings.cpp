#include "worker/settings/settings.hpp"

#include "worker/crypto/hash.hpp"
#include "worker/settings/keys.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <toml++/toml.h>
#include <type_traits>
#include <variant>

namespace lethe::settings {
namespace {

std::string parent_path(std::string_view path) {
  auto pos = path.rfind('.');
  return pos == std::string_view::npos ? std::string{} : std::string(path.substr(0, pos));
}

std::string leaf_name(std::string_view path) {
  auto pos = path.rfind('.');
  return std::string(pos == std::string_view::npos ? path : path.substr(pos + 1));
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool valid_identifier(const std::string& name, bool qualified) {
  static const std::regex k_plain("[A-Za-z_][A-Za-z0-9_$]{0,62}");
  static const std::regex k_qualified(
      "([A-Za-z_][A-Za-z0-9_$]{0,62}\\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}");
  return std::regex_match(name, qualified ? k_qualified : k_plain);
}

// Walks a parsed document: checks it against the key table, then builds Settings.
class Loader {
public:
  explicit Loader(std::string name) : m_name(std::move(name)) {}

  Settings run(const toml::table& doc) {
    Settings s;
    check_table(doc, "", s);
    if (!m_problems.empty()) {
      fail();
    }
    s = build(doc, std::move(s));
    validate(s);
    validate_backup(doc, s);
    if (!m_problems.empty()) {
      fail();
    }
    separate_keep_tables(s);
    return s;
  }

  // Moves the keep tables out of `children` (order kept), once the map is valid.
  static void separate_keep_tables(Settings& s) {
    std::vector<PiiTable> pii;
    for (PiiTable& c : s.children) {
      (c.strategy == TableStrategy::keep ? s.keep_tables : pii).push_back(std::move(c));
    }
    s.children = std::move(pii);
  }

  [[noreturn]] void fail() const {
    std::string msg = "invalid configuration " + m_name + " (" + std::to_string(m_problems.size()) +
                      (m_problems.size() == 1 ? " problem)" : " problems)");
    for (const std::string& p : m_problems) {
      msg += "\n  " + p;
    }
    throw Error(
        Exit::config, msg,
        "every key is listed by `lethe config keys` and shown in config/lethe.example.toml");
  }

  Where where(const toml::source_region& r) const {
    return m_name + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
  }

  void problem(const toml::source_region& r, const std::string& msg) {
    m_problems.push_back(where(r) + ": " + msg);
  }
  void problem(const Where& w, const std::string& msg) { m_problems.push_back(w + ": " + msg); }

private:
  std::string suggestion(const std::string& parent, const std::string& key) const {
    std::string best;
    size_t best_d = 3;
    for (const KeySpec& k : key_table()) {
      if (parent_path(k.path) != parent) {
        continue;
      }
      std::string leaf = leaf_name(k.path);
      size_t d = edit_distance(leaf, key);
      if (d < best_d) {
        best_d = d;
        best = leaf;
      }
    }
    return best.empty() ? std::string{} : " (did you mean '" + best + "'?)";
  }

  bool has_type(const toml::node& v, KeyType t) const {
    switch (t) {
    case KeyType::table:
      return v.is_table();
    case KeyType::table_array:
      return v.is_array_of_tables() || (v.is_array() && v.as_array()->empty());
    case KeyType::string:
      return v.is_string();
    case KeyType::integer:
      return v.is_integer();
    case KeyType::number:
      return v.is_number();
    case KeyType::boolean:
      return v.is_boolean();
    case KeyType::columns:
      return v.is_string() || (v.is_array() && !v.as_array()->empty() &&
                               std::all_of(v.as_array()->begin(), v.as_array()->end(),
                                           [](const toml::node& e) { return e.is_string(); }));
    case KeyType::string_array:
      return v.is_array() && std::all_of(v.as_array()->begin(), v.as_array()->end(),
                                         [](const toml::node& e) { return e.is_string(); });
    }
    return false;
  }

  // A string key with choices takes one of them.
  void check_choice(const KeySpec& spec, const toml::node& v, const std::string& value) {
    if (spec.choices.empty()) {
      return;
    }
    std::string_view rest = spec.choices;
    while (!rest.empty()) {
      size_t bar = rest.find('|');
      if (rest.substr(0, bar) == value) {
        return;
      }
      rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
    }
    std::string list(spec.choices);
    std::replace(list.begin(), list.end(), '|', ',');
    problem(v.source(), std::string(spec.path) + " must be one of: " + list);
  }

  // Stores a value of the right type into the member its key is bound to, and checks its range
  // there, so a value error names the value's own file:line:column.
  void bind(const KeySpec& spec, const toml::node& v, Settings& s) {
    std::visit(
        [&](auto ref) {
          if constexpr (!std::is_same_v<decltype(ref), std::monostate>) {
            auto& member = ref(s);
            using V = std::remove_cvref_t<decltype(member)>;
            if constexpr (std::is_same_v<V, long> || std::is_same_v<V, double>) {
              member = static_cast<V>(
                  *v.value<std::conditional_t<std::is_same_v<V, long>, int64_t, double>>());
              if (!spec.range.contains(static_cast<double>(member))) {
                problem(v.source(), std::string(spec.path) + " must be " + spec.range.text() +
                                        std::string(spec.range.why));
              }
            } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
              for (const toml::node& e : *v.as_array()) {
                member.push_back(*e.value<std::string>());
                if (spec.element_where != nullptr) {
                  spec.element_where(s).push_back(where(e.source()));
                }
              }
            } else {
              member = *v.value<std::string>();
              check_choice(spec, v, *v.value<std::string>());
            }
          }
        },
        spec.bind);
  }

  void check_table(const toml::table& t, const std::string& prefix, Settings& s) {
    for (auto&& [k, v] : t) {
      std::string key(k.str());
      std::string path = prefix.empty() ? key : prefix + "." + key;
      const KeySpec* spec = find_key(path);
      if (spec == nullptr) {
        problem(k.source(), "unknown key '" + path + "'" + suggestion(prefix, key));
        continue;
      }
      if (!has_type(v, spec->type)) {
        problem(v.source(), "'" + path + "' must be a " + std::string(type_name(spec->type)));
        continue;
      }
      if (spec->type == KeyType::table) {
        check_table(*v.as_table(), path, s);
      } else if (spec->type == KeyType::table_array) {
        for (const toml::node& e : *v.as_array()) {
          check_table(*e.as_table(), path + "[]", s);
        }
      } else {
        bind(*spec, v, s);
      }
    }
    for (const KeySpec& k : key_table()) {
      if (k.required && parent_path(k.path) == prefix && !t.contains(leaf_name(k.path))) {
        problem(t.source(), "missing required key '" + std::string(k.path) + "'");
      }
    }
  }

  static std::string str(const toml::table& t, std::string_view key, std::string dflt = {}) {
    return t[key].value<std::string>().value_or(std::move(dflt));
  }
  // A column or a list of columns (type-checked by the key table).
  static Columns column_list(const toml::table& t, std::string_view key) {
    Columns out;
    if (const toml::array* a = t[key].as_array()) {
      for (const toml::node& e : *a) {
        out.push_back(e.value<std::string>().value_or(""));
      }
    } else if (t.contains(key)) {
      out.push_back(str(t, key));
    }
    return out;
  }
  static long integer(const toml::table& t, std::string_view key, long dflt) {
    return static_cast<long>(t[key].value<int64_t>().value_or(dflt));
  }

  std::vector<PiiColumn> columns(const toml::table& t) {
    std::vector<PiiColumn> out;
    const toml::array* arr = t["columns"].as_array();
    if (arr == nullptr) {
      return out;
    }
    for (const toml::node& n : *arr) {
      const toml::table& c = *n.as_table();
      PiiColumn col;
      col.name = str(c, "name");
      col.where = where(c.source());
      std::string strategy = str(c, "strategy");
      if (strategy == "null") {
        col.strategy = Strategy::set_null;
      } else if (strategy == "constant") {
        col.strategy = Strategy::constant;
      } else if (strategy == "hmac") {
        col.strategy = Strategy::hmac;
      } else if (strategy == "json") {
        col.strategy = Strategy::json;
      } else {
        problem(c["strategy"].node()->source(),
                "strategy '" + strategy + "' is not one of null, constant, hmac, json" +
                    (strategy == "delete-row" ? " (delete-row is set on a child table)" : ""));
      }
      json_paths(c, col);
      col.category = str(c, "category");
      if (c.contains("category") &&
          std::find(k_categories.begin(), k_categories.end(), col.category) == k_categories.end()) {
        std::string all;
        for (std::string_view k : k_categories) {
          all += (all.empty() ? "" : ", ") + std::string(k);
        }
        problem(c["category"].node()->source(),
                "category '" + col.category + "' is not one of " + all);
      }
      if (c.contains("value")) {
        col.value = str(c, "value");
        if (col.strategy != Strategy::constant) {
          problem(c["value"].node()->source(), "'value' is only used with strategy constant");
        }
      } else if (col.strategy == Strategy::constant) {
        problem(c.source(), "strategy constant needs a 'value'");
      }
      out.push_back(std::move(col));
    }
    return out;
  }

  // A JSON path as written in the map, "BuyerInfo.BuyerEmail": keys of letters, digits and
  // _ $ @ - joined by dots. Empty when it is not well formed.
  static JsonPath json_path(const std::string& text) {
    static const std::regex k_path("[A-Za-z0-9_$@-]+(\\.[A-Za-z0-9_$@-]+)*");
    JsonPath out;
    if (text.size() > 512 || !std::regex_match(text, k_path)) {
      return out;
    }
    size_t start = 0;
    for (size_t dot = text.find('.'); dot != std::string::npos; dot = text.find('.', start)) {
      out.push_back(text.substr(start, dot - start));
      start = dot + 1;
    }
    out.push_back(text.substr(start));
    return out;
  }

  // `inner` is `outer` or lies inside it.
  static bool within(const JsonPath& inner, const JsonPath& outer) {
    return inner.size() >= outer.size() && std::equal(outer.begin(), outer.end(), inner.begin());
  }

  // The `remove` and `hmac` lists of a json column, each path at its own file:line:column.
  void json_paths(const toml::table& c, PiiColumn& col) {
    for (auto [key, list] : {std::pair{"remove", &col.remove}, std::pair{"hmac", &col.hmac}}) {
      const toml::array* a = c[key].as_array();
      if (a == nullptr) {
        continue;
      }
      if (col.strategy != Strategy::json) {
        problem(c[key].node()->source(), std::string("'") + key +
                                             "' is only used with strategy json (paths inside "
                                             "a JSON document)");
        continue;
      }
      for (const toml::node& e : *a) {
        std::string text = e.value<std::string>().value_or("");
        JsonPath p = json_path(text);
        if (p.empty()) {
          problem(e.source(), "JSON path '" + text +
                                  "' is not well formed: keys of letters, digits, _ $ @ - "
                                  "joined by dots, e.g. BuyerInfo.BuyerEmail");
          continue;
        }
        if (list == &col.remove && p.back().find_first_not_of("0123456789") == std::string::npos) {
          problem(e.source(), "remove path '" + text +
                                  "' ends in an array index: taking an element out moves the "
                                  "ones after it; remove the keys inside it (" +
                                  text + ".Key) or use hmac, which replaces it in place");
          continue;
        }
        if (std::find(list->begin(), list->end(), p) != list->end()) {
          problem(e.source(), std::string(key) + " lists '" + text + "' twice");
          continue;
        }
        list->push_back(std::move(p));
      }
    }
    for (const JsonPath& h : col.hmac) {
      for (const JsonPath& r : col.remove) {
        if (within(h, r)) {
          problem(c["hmac"].node()->source(),
                  "hmac path '" + json_path_text(h) + "' is inside '" + json_path_text(r) +
                      "', which remove takes out whole; remove the keys of '" + json_path_text(r) +
                      "' one by one, or drop one of the two paths");
        }
      }
      for (const JsonPath& other : col.hmac) {
        if (&other != &h && within(h, other)) {
          problem(c["hmac"].node()->source(), "hmac path '" + json_path_text(h) +
                                                  "' is inside hmac path '" +
                                                  json_path_text(other) + "'; keep one of the two");
        }
      }
    }
    if (col.strategy == Strategy::json && col.remove.empty() && col.hmac.empty()) {
      problem(c.source(), "strategy json needs paths: remove = [...] and/or hmac = [...]");
    }
  }

  // The keys bound in the key table are already stored by check_table; this adds the sections'
  // locations and reads the PII map.
  Settings build(const toml::table& doc, Settings s) {
    s.database.where = where(doc["database"].node()->source());
    if (const toml::table* h = doc["hold"].as_table()) {
      s.hold.where = where(h->source());
    }

    const toml::table& pii = *doc["pii"].as_table();
    s.hmac_key_file = str(pii, "hmac_key_file");
    const toml::table& root = *pii["root"].as_table();
    s.root.table.table = str(root, "table");
    s.root.table.key = column_list(root, "key");
    s.root.table.where = where(root.source());
    s.root.table.columns = columns(root);
    s.root.table.not_pii = column_list(root, "not_pii");
    std::string purpose = str(pii, "purpose");
    s.root.table.purpose = str(root, "purpose", purpose);
    s.root.shipped_at = str(root, "shipped_at");
    s.root.status = str(root, "status");
    s.root.seller = str(root, "seller");
    s.root.marketplace = str(root, "marketplace");
    s.root.buyer = str(root, "buyer");
    if (const toml::array* ns = root["never_shipped"].as_array()) {
      for (const toml::node& n : *ns) {
        const toml::table& t = *n.as_table();
        NeverShipped rule;
        rule.where = where(t.source());
        rule.since = str(t, "since");
        rule.days = integer(t, "days", 0);
        for (const toml::node& st : *t["statuses"].as_array()) {
          rule.statuses.push_back(st.value<std::string>().value_or(""));
        }
        s.root.never_shipped.push_back(std::move(rule));
      }
    }
    if (const toml::array* ch = pii["children"].as_array()) {
      for (const toml::node& n : *ch) {
        const toml::table& t = *n.as_table();
        PiiTable c;
        c.where = where(t.source());
        c.table = str(t, "table");
        c.parent = str(t, "parent");
        c.link = column_list(t, "link");
        c.parent_column = column_list(t, "parent_column");
        c.key = column_list(t, "key");
        std::string strategy = str(t, "strategy", "columns");
        if (strategy == "delete-row") {
          c.strategy = TableStrategy::delete_row;
        } else if (strategy == "keep") {
          c.strategy = TableStrategy::keep;
        } else if (strategy != "columns") {
          problem(t["strategy"].node()->source(),
                  "table strategy '" + strategy + "' is not one of columns, delete-row, keep");
        }
        c.columns = columns(t);
        c.not_pii = column_list(t, "not_pii");
        c.purpose = str(t, "purpose", purpose);
        s.children.push_back(std::move(c));
      }
    }
    return s;
  }

  void identifier(const std::string& name, const Where& w, const std::string& what,
                  bool qualified) {
    if (!valid_identifier(name, qualified)) {
      problem(w, what + " '" + name + "' is not a plain SQL identifier" +
                     (qualified ? " (schema.table or table)" : ""));
    }
  }

  // Each column of a key, link or parent_column list, and none twice.
  void identifiers(const Columns& names, const Where& w, const std::string& what) {
    std::set<std::string> seen;
    for (const std::string& n : names) {
      identifier(n, w, what, false);
      if (!seen.insert(n).second) {
        problem(w, what + " lists '" + n + "' twice");
      }
    }
  }

  // A keep table holds no PII column; a PII table never descends from a keep table (its
  // membership in an order and its state view walk up through PII tables only).
  void validate_keep(const PiiTable& c, const std::map<std::string, const PiiTable*>& known) {
    auto parent = known.find(c.parent);
    if (c.strategy == TableStrategy::keep && !c.columns.empty()) {
      problem(c.where, "keep table " + c.table +
                           " lists PII columns; a keep table holds no PII (use strategy "
                           "columns for a table with PII)");
    }
    if (c.strategy != TableStrategy::keep && parent != known.end() &&
        parent->second->strategy == TableStrategy::keep) {
      problem(c.where, "PII table " + c.table + " has the keep table " + c.parent +
                           " as its parent; link it to a PII table (or give " + c.parent +
                           " strategy columns)");
    }
  }

  void validate_columns(const PiiTable& t, const Settings& s) {
    std::map<std::string, int> seen;
    for (const PiiColumn& c : t.columns) {
      identifier(c.name, c.where, "column", false);
      if (++seen[c.name] == 2) {
        problem(c.where, "column '" + c.name + "' of " + t.table + " is listed twice");
      }
      if ((c.strategy == Strategy::hmac || !c.hmac.empty()) && s.hmac_key_file.empty()) {
        problem(c.where, "column '" + c.name + "' uses hmac but pii.hmac_key_file is not set");
      }
    }
    identifiers(t.not_pii, t.where, "not_pii column");
    for (const std::string& n : t.not_pii) {
      if (seen.count(n) != 0) {
        problem(t.where, "column '" + n + "' of " + t.table +
                             " is both a PII column and in not_pii; keep the one that is true");
      }
    }
  }

  void validate_root(Settings& s) {
    PiiTable& root = s.root.table;
    identifier(root.table, root.where, "table", true);
    identifiers(root.key, root.where, "key column");
    identifier(s.root.shipped_at, root.where, "shipped_at column", false);
    if (!s.root.status.empty()) {
      identifier(s.root.status, root.where, "status column", false);
    }
    for (const auto& [column, what] : {std::pair{&s.root.seller, "seller column"},
                                       std::pair{&s.root.marketplace, "marketplace column"},
                                       std::pair{&s.root.buyer, "buyer column"}}) {
      if (!column->empty()) {
        identifier(*column, root.where, what, false);
      }
    }
    if (!s.root.marketplace.empty() && s.root.seller.empty()) {
      problem(root.where, "pii.root.marketplace needs pii.root.seller: a marketplace scope is a "
                          "seller's orders in that marketplace");
    }
    if (root.columns.empty()) {
      problem(root.where, "pii.root.columns lists no column");
    }
    validate_columns(root, s);
  }

  void validate_never_shipped(const Settings& s) {
    if (!s.root.never_shipped.empty() && s.root.status.empty()) {
      problem(s.root.table.where, "never_shipped rules need pii.root.status");
    }
    std::map<std::string, int> status_rules;
    for (const NeverShipped& r : s.root.never_shipped) {
      identifier(r.since, r.where, "since column", false);
      for (const std::string& st : r.statuses) {
        if (++status_rules[st] == 2) {
          problem(r.where, "status '" + st + "' appears in two never_shipped rules");
        }
      }
      if (r.days < 1) {
        problem(r.where, "never_shipped days must be at least 1");
      }
      if (r.statuses.empty()) {
        problem(r.where, "never_shipped statuses lists no status");
      }
    }
  }

  // The link of child `c` to its parent: the parent exists above it, and parent_column (by
  // default the parent's key) has as many columns as the link.
  void validate_link(PiiTable& c, const std::map<std::string, const PiiTable*>& known) {
    auto parent = known.find(c.parent);
    if (parent == known.end()) {
      problem(c.where, "parent '" + c.parent + "' of " + c.table +
                           " is not the root or a child declared above it");
    } else if (c.parent_column.empty()) {
      c.parent_column = parent->second->key;
      if (c.parent_column.empty()) {
        problem(c.where, "parent '" + c.parent +
                             "' has no key: set parent_column here or key "
                             "on the parent");
      }
    }
    if (!c.parent_column.empty()) {
      identifiers(c.parent_column, c.where, "parent_column");
      if (c.parent_column.size() != c.link.size()) {
        problem(c.where, "link of " + c.table + " names " + std::to_string(c.link.size()) +
                             " column(s) but the parent's key (parent_column) " +
                             std::to_string(c.parent_column.size()) +
                             "; list the columns that reference each key column, in order");
      }
    }
  }

  // A deletion request's 90 days cover every copy (C6): the newest backup taken before an
  // erase is destroyed at the latest keep_days + one expiry interval after it was taken, and it
  // was taken at most one backup interval before the erase. No backup is kept forever.
  void validate_backup(const toml::table& doc, Settings& s) {
    long hours = s.backup.keep_days * 24 + s.backup.interval_hours + s.backup.expire_hours;
    if (hours <= 90 * 24) {
      return;
    }
    toml::node_view<const toml::node> at = doc.at_path("backup.keep_days");
    Where w = at ? where(at.node()->source()) : m_name;
    problem(w, "backup.keep_days (" + std::to_string(s.backup.keep_days) +
                   " days) + backup.interval_hours (" + std::to_string(s.backup.interval_hours) +
                   ") + backup.expire_hours (" + std::to_string(s.backup.expire_hours) + ") is " +
                   std::to_string(hours) +
                   " hours: a backup taken before a deletion request could outlive the 90 days "
                   "Amazon allows for every copy (2160 hours); lower keep_days");
  }

  void validate(Settings& s) {
    validate_root(s);
    validate_never_shipped(s);
    std::map<std::string, const PiiTable*> known{{s.root.table.table, &s.root.table}};
    for (PiiTable& c : s.children) {
      identifier(c.table, c.where, "table", true);
      identifiers(c.link, c.where, "link column");
      identifiers(c.key, c.where, "key column");
      if (known.contains(c.table)) {
        problem(c.where, "table '" + c.table + "' appears twice in the PII map");
        continue;
      }
      validate_link(c, known);
      validate_keep(c, known);
      if (c.strategy == TableStrategy::columns && c.columns.empty()) {
        problem(c.where, "child " + c.table +
                             " lists no columns; list them or use strategy "
                             "delete-row");
      }
      validate_columns(c, s);
      known.emplace(c.table, &c);
    }
  }

  std::string m_name;
  std::vector<std::string> m_problems;
};

Settings parse(const std::string& text, const std::string& name) {
  toml::table doc;
  try {
    doc = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw Error(Exit::config,
                "cannot parse " + name + ":" + std::to_string(b.line) + ":" +
                    std::to_string(b.column) + ": " + std::string(e.description()),
                "fix the TOML syntax at that position");
  }
  return Loader(name).run(doc);
}

} // namespace

std::vector<const PiiTable*> Settings::pii_tables() const {
  std::vector<const PiiTable*> out{&root.table};
  for (const PiiTable& c : children) {
    out.push_back(&c);
  }
  return out;
}

std::vector<const PiiTable*> Settings::kept_tables() const {
  std::vector<const PiiTable*> out;
  for (const PiiTable& c : keep_tables) {
    out.push_back(&c);
  }
  return out;
}

const PiiTable* Settings::find_table(const std::string& name) const {
  for (const std::vector<const PiiTable*>& tables : {pii_tables(), kept_tables()}) {
    for (const PiiTable* t : tables) {
      if (t->table == name) {
        return t;
      }
    }
  }
  return nullptr;
}

Settings load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(Exit::config, "configuration file " + path.string() + " does not exist",
                "pass --config FILE or set LETHE_CONFIG; start from config/lethe.example.toml");
  }
  Settings s = parse(util::read_file(path), path.string());
  s.source = path;
  return s;
}

Settings load_from_string(const std::string& text, const std::string& name) {
  return parse(text, name);
}

std::filesystem::path resolve_path(const std::string& cli_value) {
  if (!cli_value.empty()) {
    return cli_value;
  }
  if (const char* env = std::getenv("LETHE_CONFIG"); env != nullptr && *env != '\0') {
    return env;
  }
  return k_default_config_path;
}

std::string json_path_text(const JsonPath& path) {
  std::string out;
  for (const std::string& k : path) {
    out += (out.empty() ? "" : ".") + k;
  }
  return out;
}

std::vector<std::string> uncategorized_columns(const Settings& s) {
  std::vector<std::string> out;
  for (const PiiTable* t : s.pii_tables()) {
    for (const PiiColumn& c : t->columns) {
      if (c.category.empty()) {
        out.push_back(c.where + ": PII column " + t->table + "." + c.name + " has no category");
      }
    }
  }
  return out;
}

std::string categories_hint() {
  std::string all;
  for (std::string_view k : k_categories) {
    all += (all.empty() ? "" : ", ") + std::string(k);
  }
  return "add category = \"...\" to each PII column (what it holds, for the record of "
         "processing), one of " +
         all;
}

void require_categories(const Settings& s) {
  std::vector<std::string> missing = uncategorized_columns(s);
  if (missing.empty()) {
    return;
  }
  std::string msg = std::to_string(missing.size()) +
                    (missing.size() == 1 ? " PII column has" : " PII columns have") +
                    " no category:";
  for (const std::string& m : missing) {
    msg += "\n  " + m;
  }
  throw Error(Exit::config, msg, categories_hint());
}

std::string pii_map_digest(const Settings& s) {
  std::string text = "lethe-pii-map-v1\n";
  auto field = [&text](const std::string& v) { text += std::to_string(v.size()) + ":" + v + ";"; };
  // A one-column list reads as the column itself, so maps written before composite keys keep
  // their digest (a plain identifier never holds a comma).
  auto fields = [&field](const Columns& cols) {
    std::string joined;
    for (const std::string& c : cols) {
      joined += (joined.empty() ? "" : ",") + c;
    }
    field(joined);
  };
  field(s.root.shipped_at);
  field(s.root.status);
  for (const NeverShipped& r : s.root.never_shipped) {
    field(r.since);
    field(std::to_string(r.days));
    for (const std::string& st : r.statuses) {
      field(st);
    }
  }
  field(std::to_string(s.retention.days));
  field(s.hold.predicate);
  field(std::to_string(s.hold.archive_years));
  for (const PiiTable* t : s.pii_tables()) {
    text += "\n";
    field(t->table);
    field(t->parent);
    fields(t->link);
    fields(t->parent_column);
    fields(t->key);
    field(t->strategy == TableStrategy::delete_row ? "delete-row" : "columns");
    for (const PiiColumn& c : t->columns) {
      field(c.name);
      field(std::to_string(static_cast<int>(c.strategy)));
      field(c.value);
      // Only json columns add fields, so the digest of every other map stays what it was.
      for (const auto& [tag, paths] :
           {std::pair{"remove:", &c.remove}, std::pair{"hmac:", &c.hmac}}) {
        for (const JsonPath& p : *paths) {
          text += tag;
          fields(p);
        }
      }
    }
  }
  if (!s.root.seller.empty() || !s.root.marketplace.empty() || !s.root.buyer.empty()) {
    text += "\nrequest:";
    field(s.root.seller);
    field(s.root.marketplace);
    field(s.root.buyer);
  }
  for (const PiiTable* t : s.kept_tables()) {
    text += "\nkeep:";
    field(t->table);
    field(t->parent);
    fields(t->link);
    fields(t->parent_column);
    fields(t->key);
  }
  return crypto::hex(crypto::sha256(text));
}

} // namespace lethe::settings
