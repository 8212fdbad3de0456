#include "worker/settings/keys.hpp"
#include "worker/settings/settings.hpp"
#include "worker/util/error.hpp"
#include "worker/util/files.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <regex>
#include <set>
#include <variant>

using namespace lethe;

namespace {

const std::string k_minimal = R"([database]
dsn = "host=db port=5432 dbname=orders"
sslrootcert = "/etc/ca.pem"
[pii.root]
table = "orders"
key = "id"
shipped_at = "shipped_at"
columns = [{ name = "email", strategy = "null" }]
)";

// Loads `text` and returns the configuration error message ("" when it loads).
std::string config_error(const std::string& text) {
  try {
    settings::load_from_string(text, "t.toml");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::config);
    CHECK_FALSE(e.hint().empty());
    return e.what();
  }
  return {};
}

std::string example() {
  return util::read_file(LETHE_SOURCE_DIR "/config/lethe.example.toml");
}

} // namespace

TEST_CASE("load: the example configuration loads with its PII map") {
  settings::Settings s = settings::load_from_string(example(), "example.toml");
  CHECK(s.root.table.table == "public.orders");
  CHECK(s.root.table.columns.size() == 2);
  CHECK(s.root.table.columns[0].strategy == settings::Strategy::hmac);
  CHECK(s.root.table.columns[1].strategy == settings::Strategy::constant);
  CHECK(s.root.table.columns[1].value == "[redacted]");
  REQUIRE(s.children.size() == 3);
  CHECK(s.children[1].strategy == settings::TableStrategy::delete_row);
  // A grandchild's parent_column defaults to its parent's key.
  CHECK(s.children[2].parent_column == settings::Columns{"tax_info_id"});
  CHECK(s.root.never_shipped.size() == 2);
  CHECK(s.hold.predicate == "is_business_order");
}

TEST_CASE("load: defaults come from the key table") {
  settings::Settings s = settings::load_from_string(k_minimal, "t.toml");
  auto dflt = [](std::string_view path) {
    return settings::default_text(*settings::find_key(path));
  };
  CHECK(std::to_string(s.retention.days) == dflt("retention.days"));
  CHECK(std::to_string(s.purge.batch_size) == dflt("purge.batch_size"));
  CHECK(std::to_string(s.purge.max_rows_per_run) == dflt("purge.max_rows_per_run"));
  CHECK(std::stod(dflt("purge.max_fraction_of_table")) == s.purge.max_fraction_of_table);
  CHECK(std::to_string(s.database.connect_timeout_s) == dflt("database.connect_timeout_s"));
  CHECK(std::to_string(s.database.lock_timeout_ms) == dflt("database.lock_timeout_ms"));
  CHECK(std::to_string(s.database.statement_timeout_ms) == dflt("database.statement_timeout_ms"));
  CHECK(s.database.password_credential == dflt("database.password_credential"));
  CHECK(s.audit.anchor_file.string() == dflt("audit.anchor_file"));
  CHECK(s.audit.spool_file.string() == dflt("audit.spool_file"));
  CHECK(std::to_string(s.hold.archive_years) == dflt("hold.archive_years"));
  CHECK(std::to_string(s.purge.workers) == dflt("purge.workers"));
  CHECK(s.archive.spool_dir.string() == dflt("archive.spool_dir"));
  CHECK(s.archive.key_namespace == dflt("archive.key_namespace"));
  CHECK(s.archive.key_name == dflt("archive.key_name"));
  CHECK(std::to_string(s.archive.member_mib) == dflt("archive.member_mib"));
}

TEST_CASE("load: an unknown key is reported with file:line:column and a suggestion") {
  std::string msg = config_error(k_minimal + "[purge]\nbatch_sise = 10\n");
  CHECK(msg.find("t.toml:10:1: unknown key 'purge.batch_sise'") != std::string::npos);
  CHECK(msg.find("did you mean 'batch_size'") != std::string::npos);
}

TEST_CASE("load: a wrong type is reported where the value is") {
  std::string msg = config_error(k_minimal + "[retention]\ndays = \"30\"\n");
  CHECK(msg.find("t.toml:10:8: 'retention.days' must be a integer") != std::string::npos);
}

TEST_CASE("load: missing required keys are each reported") {
  std::string msg = config_error("[database]\ndsn = \"host=x\"\n");
  CHECK(msg.find("missing required key 'database.sslrootcert'") != std::string::npos);
  CHECK(msg.find("missing required key 'pii'") != std::string::npos);
  CHECK(msg.find("(2 problems)") != std::string::npos);
}

TEST_CASE("load: a TOML syntax error names its position") {
  std::string msg = config_error("[database\n");
  CHECK(std::regex_search(msg, std::regex("t\\.toml:1:\\d+")));
}

TEST_CASE("load: the PII map's shape is checked") {
  SECTION("constant needs a value") {
    std::string msg =
        config_error(std::regex_replace(k_minimal, std::regex("\"null\""), "\"constant\""));
    CHECK(msg.find("strategy constant needs a 'value'") != std::string::npos);
  }
  SECTION("hmac needs a key file") {
    std::string msg =
        config_error(std::regex_replace(k_minimal, std::regex("\"null\""), "\"hmac\""));
    CHECK(msg.find("pii.hmac_key_file is not set") != std::string::npos);
  }
  SECTION("an unknown strategy") {
    std::string msg =
        config_error(std::regex_replace(k_minimal, std::regex("\"null\""), "\"delete-row\""));
    CHECK(msg.find("delete-row is set on a child table") != std::string::npos);
  }
  SECTION("retention above the policy's 30 days") {
    std::string msg = config_error(k_minimal + "[retention]\ndays = 31\n");
    CHECK(msg.find("between 1 and 30") != std::string::npos);
  }
  SECTION("a child whose parent is not declared above it") {
    std::string msg = config_error(k_minimal + "[[pii.children]]\ntable = \"a\"\nparent = \"b\"\n"
                                               "link = \"x\"\nstrategy = \"delete-row\"\n");
    CHECK(msg.find("parent 'b' of a is not the root or a child declared above it") !=
          std::string::npos);
  }
  SECTION("an identifier that is not plain SQL") {
    std::string msg =
        config_error(std::regex_replace(k_minimal, std::regex("\"orders\""), "\"orders; drop\""));
    CHECK(msg.find("is not a plain SQL identifier") != std::string::npos);
  }
  SECTION("never_shipped rules need the status column") {
    std::string msg =
        config_error(k_minimal + "[[pii.root.never_shipped]]\nstatuses = [\"Canceled\"]\n"
                                 "since = \"updated\"\ndays = 30\n");
    CHECK(msg.find("never_shipped rules need pii.root.status") != std::string::npos);
  }
}

TEST_CASE("pii_map_digest: changes with the map and only with it") {
  settings::Settings a = settings::load_from_string(k_minimal, "a.toml");
  settings::Settings b =
      settings::load_from_string(k_minimal + "[purge]\nbatch_size = 7\n", "b.toml");
  settings::Settings c = settings::load_from_string(
      std::regex_replace(k_minimal, std::regex("\"email\""), "\"mail\""), "c.toml");
  CHECK(settings::pii_map_digest(a) == settings::pii_map_digest(b));
  CHECK(settings::pii_map_digest(a) != settings::pii_map_digest(c));
  CHECK(settings::pii_map_digest(a).size() == 64);
}

TEST_CASE("key_table: config/lethe.example.toml shows every key and nothing else") {
  // Every dotted key path written in the example, normalized the way the loader does.
  std::set<std::string> documented;
  for (const settings::KeySpec& k : settings::key_table()) {
    std::string leaf(
        k.path.substr(k.path.rfind('.') == std::string_view::npos ? 0 : k.path.rfind('.') + 1));
    std::string text = example();
    bool as_key = std::regex_search(text, std::regex("(^|\\n|\\{ |, )" + leaf + " = "));
    bool as_table =
        text.find("[" + std::string(k.path.substr(0, k.path.find("[]")))) != std::string::npos;
    INFO(k.path);
    CHECK((as_key || as_table));
    CHECK_FALSE(k.meaning.empty());
  }
  // And the example loads, so it has no key the table lacks.
  CHECK_NOTHROW(settings::load_from_string(example(), "example.toml"));
}

TEST_CASE("resolve_path: --config beats $LETHE_CONFIG beats the default") {
  ::unsetenv("LETHE_CONFIG");
  CHECK(settings::resolve_path("") == settings::k_default_config_path);
  ::setenv("LETHE_CONFIG", "/tmp/env.toml", 1);
  CHECK(settings::resolve_path("") == "/tmp/env.toml");
  CHECK(settings::resolve_path("/tmp/cli.toml") == "/tmp/cli.toml");
  ::unsetenv("LETHE_CONFIG");
}

TEST_CASE("load: a range error names the value's own line and column") {
  // Before the key table carried ranges, these pointed at [pii.root] (4:1) and at nothing.
  std::string msg = config_error(k_minimal + "[purge]\nbatch_size = 0\n");
  CHECK(msg.find("t.toml:10:14: purge.batch_size must be between 1 and 1000000") !=
        std::string::npos);
  msg = config_error(k_minimal + "[archive]\nmember_mib = 0\n");
  CHECK(msg.find("t.toml:10:14: archive.member_mib must be between 1 and 1024") !=
        std::string::npos);
  msg = config_error(k_minimal + "[purge]\nmax_fraction_of_table = 1.5\n");
  CHECK(msg.find("t.toml:10:25: purge.max_fraction_of_table must be in (0, 1]") !=
        std::string::npos);
  msg = config_error(std::regex_replace(k_minimal, std::regex("(sslrootcert = .*\n)"),
                                        "$1lock_timeout_ms = -1\n"));
  CHECK(msg.find("t.toml:4:19: database.lock_timeout_ms must be at least 0") != std::string::npos);
}

TEST_CASE("key_table: every key outside the PII map is bound to a member with its default") {
  for (const settings::KeySpec& k : settings::key_table()) {
    INFO(k.path);
    bool container = k.type == settings::KeyType::table || k.type == settings::KeyType::table_array;
    bool pii = k.path.starts_with("pii");
    // A key the loader would accept but store nowhere is a bug of the table.
    CHECK(std::holds_alternative<std::monostate>(k.bind) == (container || pii));
    if (k.type == settings::KeyType::integer || k.type == settings::KeyType::number) {
      if (!pii) {
        // Each number has a range, and its default lies inside it.
        CHECK(std::isfinite(k.range.min));
        CHECK(k.range.contains(std::stod(settings::default_text(k))));
      }
    }
  }
}

TEST_CASE("load: the request identifiers are optional columns, and a marketplace needs a seller") {
  settings::Settings ex = settings::load_from_string(example(), "example.toml");
  CHECK(ex.root.seller == "seller_id");
  CHECK(ex.root.marketplace == "marketplace_id");
  CHECK(ex.root.buyer == "buyer_email");
  settings::Settings min = settings::load_from_string(k_minimal, "t.toml");
  CHECK(min.root.seller.empty());
  CHECK(min.root.buyer.empty());
  std::string root_end = "shipped_at = \"shipped_at\"\n";
  auto with = [&](const std::string& lines) {
    std::string text = k_minimal;
    return text.replace(text.find(root_end), root_end.size(), root_end + lines);
  };
  CHECK(config_error(with("marketplace = \"marketplace_id\"\n"))
            .find("pii.root.marketplace needs pii.root.seller") != std::string::npos);
  CHECK(config_error(with("buyer = \"buyer email\"\n"))
            .find("buyer column 'buyer email' is not a plain SQL identifier") != std::string::npos);
  CHECK(config_error(with("seller = \"s\"\nmarketplace = \"m\"\nbuyer = \"b\"\n")).empty());
  // A map without them keeps its digest; naming them changes it.
  CHECK(settings::pii_map_digest(min) !=
        settings::pii_map_digest(settings::load_from_string(with("seller = \"s\"\n"), "t.toml")));
}

namespace {

// k_minimal with a payload column of strategy json and the given extra keys in its table.
std::string with_json(const std::string& keys) {
  return R"([database]
dsn = "host=db port=5432 dbname=orders"
sslrootcert = "/etc/ca.pem"
[pii]
hmac_key_file = "/etc/lethe/hmac.key"
[pii.root]
table = "orders"
key = "id"
shipped_at = "shipped_at"
[[pii.root.columns]]
name = "payload"
strategy = "json"
)" + keys +
         "\n";
}

} // namespace

TEST_CASE("load: strategy json reads its remove and hmac paths, keys split at the dots") {
  settings::Settings s = settings::load_from_string(
      with_json(R"(remove = ["ShippingAddress", "BuyerInfo.BuyerName", "Items.0.Gift-Message"]
hmac = ["BuyerInfo.BuyerEmail"])"),
      "t.toml");
  const settings::PiiColumn& c = s.root.table.columns.at(0);
  CHECK(c.strategy == settings::Strategy::json);
  CHECK(c.remove == std::vector<settings::JsonPath>{{"ShippingAddress"},
                                                    {"BuyerInfo", "BuyerName"},
                                                    {"Items", "0", "Gift-Message"}});
  CHECK(c.hmac == std::vector<settings::JsonPath>{{"BuyerInfo", "BuyerEmail"}});
  // The paths are part of the map, so its digest changes with them.
  settings::Settings other =
      settings::load_from_string(with_json(R"(remove = ["ShippingAddress"])"), "t.toml");
  CHECK(settings::pii_map_digest(s) != settings::pii_map_digest(other));
}

TEST_CASE("load: a JSON path that is not well formed is refused at its own file:line:column") {
  for (const std::string bad : {"", ".BuyerInfo", "BuyerInfo.", "BuyerInfo..BuyerEmail",
                                "Buyer Info", "BuyerInfo[0]", "'BuyerInfo'", "Buyer\\u00e9"}) {
    INFO(bad);
    std::string err = config_error(with_json("remove = [\"Ok\", \"" + bad + "\"]"));
    // The second element of the array on line 13, after `remove = ["Ok", `.
    CHECK(err.find("t.toml:13:17: JSON path '") != std::string::npos);
    CHECK(err.find("is not well formed") != std::string::npos);
  }
}

TEST_CASE("load: strategy json refuses contradictory or missing paths, and paths elsewhere") {
  CHECK(config_error(with_json("")).find("strategy json needs paths") != std::string::npos);
  CHECK(config_error(with_json(R"(remove = ["BuyerInfo"]
hmac = ["BuyerInfo.BuyerEmail"])"))
            .find("hmac path 'BuyerInfo.BuyerEmail' is inside 'BuyerInfo', which remove takes "
                  "out whole") != std::string::npos);
  CHECK(config_error(with_json(R"(hmac = ["BuyerInfo", "BuyerInfo.BuyerEmail"])"))
            .find("is inside hmac path 'BuyerInfo'") != std::string::npos);
  CHECK(config_error(with_json(R"(remove = ["A", "A"])")).find("lists 'A' twice") !=
        std::string::npos);
  // Taking an array element out would move the next one into its place.
  CHECK(config_error(with_json(R"(remove = ["Phones.0"])"))
            .find("remove path 'Phones.0' ends in an array index") != std::string::npos);
  CHECK(
      config_error(with_json("remove = [\"Items.0.GiftMessage\"]\nhmac = [\"Phones.0\"]")).empty());
  std::string not_json = k_minimal;
  not_json.replace(not_json.find(R"("null" })"), 8, R"("null", remove = ["A"] })");
  CHECK(config_error(not_json).find("'remove' is only used with strategy json") !=
        std::string::npos);
  // hmac paths need the hmac key, like an hmac column.
  std::string no_key = with_json(R"(hmac = ["BuyerInfo.BuyerEmail"])");
  no_key.replace(no_key.find("[pii]\nhmac_key_file"),
                 std::string("[pii]\nhmac_key_file = \"/etc/lethe/hmac.key\"\n").size(), "");
  CHECK(config_error(no_key).find("uses hmac but pii.hmac_key_file is not set") !=
        std::string::npos);
}
