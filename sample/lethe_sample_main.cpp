// lethe-sample: loads deterministic sample orders into the database a lethe configuration names.
// For the demo, the tests and the benchmarks only; never point it at production.
#include "sample/generator.hpp"
#include "worker/log/log.hpp"
#include "worker/util/files.hpp"

#include <cstring>
#include <iostream>

namespace {

const char* k_usage =
    "Usage: lethe-sample --config FILE [--reset] [--orders N] [--seed S] [--from DATE] [--to "
    "DATE]\n"
    "                    [--first-index N] [--schema-sql FILE]\n\n"
    "Loads N generated SP-API-like orders (with shipping addresses, buyer tax info, tax\n"
    "classifications and order items) into the database of the lethe configuration FILE.\n"
    "The same seed and options always give the same rows.\n\n"
    "  --reset            drop and recreate the sample tables first (sql/sample/orders.sql)\n"
    "  --orders N         how many orders (default 1000)\n"
    "  --seed S           generator seed (default 42)\n"
    "  --from DATE        earliest purchase date, YYYY-MM-DD (default 90 days before --to)\n"
    "  --to DATE          latest purchase date (default today)\n"
    "  --first-index N    number of the first order (default 0), to add orders to a loaded set\n"
    "  --schema-sql FILE  the sample schema (default " LETHE_SOURCE_DIR "/sql/sample/orders.sql)\n";

} // namespace

int main(int argc, char** argv) {
  using namespace lethe;
  std::string config;
  std::string schema = LETHE_SOURCE_DIR "/sql/sample/orders.sql";
  bool reset = false;
  sample::Options opt;
  long long today = static_cast<long long>(std::time(nullptr)) / 86400 * 86400;
  opt.to_epoch = today;
  opt.from_epoch = 0;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) {
          throw Error(Exit::usage, "option " + a + " needs a value", "see lethe-sample --help");
        }
        return argv[++i];
      };
      if (a == "--help" || a == "-h") {
        std::cout << k_usage;
        return 0;
      } else if (a == "--config") {
        config = value();
      } else if (a == "--reset") {
        reset = true;
      } else if (a == "--orders") {
        opt.orders = std::stol(value());
      } else if (a == "--seed") {
        opt.seed = std::stoull(value());
      } else if (a == "--from") {
        opt.from_epoch = sample::parse_date(value());
      } else if (a == "--to") {
        opt.to_epoch = sample::parse_date(value());
      } else if (a == "--first-index") {
        opt.first_index = std::stol(value());
      } else if (a == "--schema-sql") {
        schema = value();
      } else {
        throw Error(Exit::usage, "unknown argument " + a, "see lethe-sample --help");
      }
    }
    if (config.empty()) {
      throw Error(Exit::usage, "--config is required", "see lethe-sample --help");
    }
    if (opt.from_epoch == 0) {
      opt.from_epoch = opt.to_epoch - 90LL * 86400;
    }
    settings::Settings s = settings::load(config);
    std::unique_ptr<db::Session> session = db::connect(s);
    if (reset) {
      sample::create_schema(*session, util::read_file(schema));
    }
    sample::Counts c = sample::load(*session, opt);
    log::event(log::Level::info, "sample.loaded",
               {{"orders", c.orders},
                {"addresses", c.addresses},
                {"tax_infos", c.tax_infos},
                {"tax_classifications", c.tax_classifications},
                {"items", c.items},
                {"seed", opt.seed}});
    std::cout << "loaded " << c.orders << " orders, " << c.addresses << " shipping addresses, "
              << c.tax_infos << " buyer tax infos, " << c.tax_classifications
              << " tax classifications, " << c.items << " order items (seed " << opt.seed << ")\n";
    return 0;
  } catch (const Error& e) {
    std::cerr << "lethe-sample: error: " << e.what() << "\n";
    if (!e.hint().empty()) {
      std::cerr << "HINT: " << e.hint() << "\n";
    }
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "lethe-sample: error: " << e.what() << "\nHINT: check the numeric options\n";
    return static_cast<int>(Exit::usage);
  }
}
