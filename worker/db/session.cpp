#include "worker/db/session.hpp"

#include "worker/db/errors_internal.hpp"
#include "worker/util/files.hpp"
#include "worker/util/secret.hpp"

#include <libpq-fe.h>
#include <pqxx/pqxx>

namespace lethe::db {
namespace {

// Connection policy that refuses any established connection without TLS. With
// sslmode=verify-full libpq already refuses plaintext over TCP; this also catches Unix sockets
// (where libpq ignores sslmode) and anything a future libpq might relax.
thread_local PGconn* t_last_handle = nullptr;
// The password for the connection being opened on this thread. It goes to libpq beside the
// connection string, so libpqxx's copy of that string never holds it.
thread_local const util::Secret* t_password = nullptr;

// Drops server notices: a trigger's RAISE NOTICE can quote row data.
void drop_notice(void* /*arg*/, const char* /*message*/) {}

class TlsOnly : public pqxx::connect_direct {
public:
  explicit TlsOnly(const std::string& opts) : pqxx::connect_direct(opts) {}
  handle do_startconnect(handle orig) override {
    handle h = orig != nullptr ? orig : start(options());
    if (h != nullptr && PQstatus(h) == CONNECTION_OK && PQsslInUse(h) == 0) {
      std::string where = std::string(PQhost(h)) + ":" + PQport(h);
      PQfinish(h);
      throw TlsRefused(Exit::unavailable,
                       "database server " + where + " accepted a connection without TLS; refused",
                       "connect over TCP to a server with ssl=on (C9: TLS on every channel)");
    }
    t_last_handle = h;
    return h;
  }

private:
  // What connect_direct does, with the password as a separate libpq parameter.
  static handle start(const std::string& conninfo) {
    const char* keys[] = {"dbname", "password", nullptr};
    const char* values[] = {conninfo.c_str(), t_password != nullptr ? t_password->c_str() : nullptr,
                            nullptr};
    handle h = PQconnectdbParams(keys, values, 1);
    if (h == nullptr) {
      throw std::bad_alloc();
    }
    if (PQstatus(h) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(h);
      PQfinish(h);
      throw pqxx::broken_connection(msg);
    }
    return h;
  }
};

using Connection = pqxx::basic_connection_base<TlsOnly>;

std::string conninfo_quote(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "'";
}

struct ParsedDsn {
  std::vector<std::pair<std::string, std::string>> options; // keyword, value (set ones only)
  std::string get(const std::string& k) const {
    for (const auto& [key, val] : options) {
      if (key == k) {
        return val;
      }
    }
    return {};
  }
};

ParsedDsn parse_dsn(const settings::Database& db) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(db.dsn.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err != nullptr ? err : "out of memory";
    PQfreemem(err);
    while (!msg.empty() && msg.back() == '\n') {
      msg.pop_back();
    }
    throw Error(Exit::config, "database.dsn cannot be parsed: " + msg,
                "write it as 'host=… port=… dbname=… user=…' or a postgresql:// URI", db.where);
  }
  ParsedDsn out;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) {
      out.options.emplace_back(o->keyword, o->val);
    }
  }
  PQconninfoFree(opts);
  return out;
}

} // namespace

namespace {

// Runs `sql` on the raw handle, so a failure's fields (SQLSTATE, table, column, constraint)
// can be read; libpqxx 6 keeps only the message text.
Rows exec_raw(PGconn* c, std::string_view sql, const Params& params) {
  std::string q(sql);
  PGresult* r = nullptr;
  if (params.empty()) {
    r = PQexec(c, q.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const Value& p : params) {
      values.push_back(p ? p->c_str() : nullptr);
    }
    r = PQexecParams(c, q.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                     nullptr, 0);
  }
  std::unique_ptr<PGresult, decltype(&PQclear)> guard(r, PQclear);
  ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) {
    Rows out;
    int cols = PQnfields(r);
    for (int col = 0; col < cols; ++col) {
      out.m_columns.emplace_back(PQfname(r, col));
    }
    int rows = PQntuples(r);
    out.m_rows.reserve(static_cast<size_t>(rows));
    for (int row = 0; row < rows; ++row) {
      std::vector<Value> values;
      values.reserve(static_cast<size_t>(cols));
      for (int col = 0; col < cols; ++col) {
        values.push_back(PQgetisnull(r, row, col)
                             ? Value{}
                             : Value{std::string(PQgetvalue(r, row, col),
                                                 static_cast<size_t>(PQgetlength(r, row, col)))});
      }
      out.m_rows.push_back(std::move(values));
    }
    const char* n = PQcmdTuples(r);
    out.m_affected = n != nullptr && *n != '\0' ? std::stoul(n) : 0;
    return out;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    throw connection_lost();
  }
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  throw server_error(state != nullptr ? state : "", r);
}

} // namespace

struct Session::Impl {
  std::unique_ptr<Connection> conn;
  PGconn* raw = nullptr; // for COPY, which libpqxx 6 cannot do for a query
  std::string endpoint;
};

struct Transaction::Impl {
  explicit Impl(Connection& c) : work(c) {}
  pqxx::work work;
};

const std::string& Rows::text(size_t row, size_t col) const {
  const Value& v = at(row, col);
  if (!v) {
    throw Error(Exit::internal, "unexpected NULL in column " + m_columns.at(col));
  }
  return *v;
}

long long Rows::integer(size_t row, size_t col) const {
  return std::stoll(text(row, col));
}

Transaction::Transaction(Session& session) : m_session(session) {
  try {
    m_impl = std::make_unique<Impl>(*session.m_impl->conn);
  } catch (...) {
    rethrow_db_error(session.m_impl->raw);
  }
}

Transaction::~Transaction() = default;

Rows Transaction::exec(std::string_view sql, const Params& params) {
  // Inside the BEGIN that m_impl->work sent; the raw handle is the same connection.
  return exec_raw(m_session.m_impl->raw, sql, params);
}

namespace {

// A COPY that failed on the client side: the connection, or libpq's text (not shown).
DbError copy_failed(PGconn* c, const std::string& what) {
  if (PQstatus(c) != CONNECTION_OK) {
    return connection_lost();
  }
  return DbError(Exit::unavailable, what + " failed (the client library's text is not shown)",
                 "08000", "run the job again; if it persists, read the server log");
}

size_t finish_copy(PGconn* c, const std::string& what) {
  size_t rows = 0;
  bool failed = false;
  std::string state;
  std::string msg;
  std::string hint;
  while (PGresult* r = PQgetResult(c)) {
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      const char* t = PQcmdTuples(r);
      rows = t != nullptr && *t != '\0' ? std::stoul(t) : 0;
    } else if (!failed) {
      failed = true;
      const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      state = s != nullptr ? s : "";
      DbError e = server_error(state, r);
      msg = what + " failed: " + e.what();
      hint = e.hint();
    }
    PQclear(r);
  }
  if (failed) {
    if (PQstatus(c) != CONNECTION_OK) {
      throw connection_lost();
    }
    throw DbError(classify(state), msg, state, hint);
  }
  return rows;
}

PGconn* start_copy(PGconn* c, const std::string& sql, ExecStatusType want) {
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  if (st != want) {
    if (PQstatus(c) != CONNECTION_OK) {
      PQclear(r);
      throw connection_lost();
    }
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    DbError e = server_error(s != nullptr ? s : "", r);
    PQclear(r);
    throw DbError(e.code(), std::string("COPY failed: ") + e.what(), e.sqlstate(), e.hint());
  }
  PQclear(r);
  return c;
}

} // namespace

size_t Transaction::copy_in(const std::string& target,
                            const std::function<bool(std::string&)>& next) {
  std::string line;
  return copy_in_data("COPY " + target + " FROM STDIN", [&](std::string& chunk) {
    // Gather lines into chunks of about 64 KiB.
    while (chunk.size() < (1U << 16)) {
      line.clear();
      if (!next(line)) {
        return !chunk.empty();
      }
      chunk += line;
      chunk += '\n';
    }
    return true;
  });
}

size_t Transaction::copy_in_data(const std::string& copy_sql,
                                 const std::function<bool(std::string&)>& next) {
  PGconn* c = start_copy(m_session.m_impl->raw, copy_sql, PGRES_COPY_IN);
  std::string chunk;
  // A chunk may carry key material (the engine's hmac pads): overwritten before reuse.
  auto wipe = [&chunk] { util::wipe_bytes(chunk.data(), chunk.size()); };
  while (true) {
    wipe();
    chunk.clear();
    bool more = false;
    try {
      more = next(chunk);
    } catch (...) {
      PQputCopyEnd(c, "lethe: producer failed");
      try {
        finish_copy(c, "COPY IN");
      } catch (const Error&) {
      }
      throw;
    }
    if (!chunk.empty() && PQputCopyData(c, chunk.data(), static_cast<int>(chunk.size())) != 1) {
      wipe();
      throw copy_failed(c, "COPY IN");
    }
    if (!more) {
      break;
    }
  }
  wipe();
  if (PQputCopyEnd(c, nullptr) != 1) {
    throw copy_failed(c, "COPY IN");
  }
  return finish_copy(c, "COPY IN");
}

size_t Transaction::copy_out(const std::string& copy_sql,
                             const std::function<void(std::string_view)>& sink) {
  PGconn* c = start_copy(m_session.m_impl->raw, copy_sql, PGRES_COPY_OUT);
  while (true) {
    char* data = nullptr;
    int n = PQgetCopyData(c, &data, 0);
    if (n > 0) {
      try {
        sink(std::string_view(data, static_cast<size_t>(n)));
      } catch (...) {
        PQfreemem(data);
        // Drain the rest so the connection stays usable for the rollback.
        while (PQgetCopyData(c, &data, 0) > 0) {
          PQfreemem(data);
        }
        while (PGresult* r = PQgetResult(c)) {
          PQclear(r);
        }
        throw;
      }
      PQfreemem(data);
      continue;
    }
    if (n == -1) {
      break;
    }
    throw copy_failed(c, "COPY OUT");
  }
  return finish_copy(c, "COPY OUT");
}

void Transaction::commit() {
  try {
    m_impl->work.commit();
  } catch (...) {
    rethrow_db_error(m_session.m_impl->raw);
  }
}

Session::Session() : m_impl(std::make_unique<Impl>()) {}
Session::~Session() = default;

Rows Session::exec(std::string_view sql, const Params& params) {
  return exec_raw(m_impl->raw, sql, params); // autocommit, as a libpqxx nontransaction
}

void Session::transact(const std::function<void(Transaction&)>& work) {
  Transaction tx(*this);
  work(tx);
  tx.commit();
}

std::string Session::tls_description() const {
  // Ask the server what it negotiated.
  Rows r = exec_raw(m_impl->raw,
                    "SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()", {});
  if (r.empty() || !r.at(0, 0)) {
    return "none";
  }
  return *r.at(0, 0) + " " + r.at(0, 1).value_or("");
}

std::string Session::endpoint() const {
  return m_impl->endpoint;
}

std::string Session::connection_string() const {
  return m_impl->conn->options();
}

std::string dsn_with_dbname(const settings::Database& db, const std::string& dbname) {
  auto quoted = [](const std::string& v) {
    std::string out = "'";
    for (char c : v) {
      if (c == '\\' || c == '\'') {
        out += '\\';
      }
      out += c;
    }
    return out + "'";
  };
  std::string out;
  for (const auto& [key, value] : parse_dsn(db).options) {
    if (key != "dbname") {
      out += key + "=" + quoted(value) + " ";
    }
  }
  return out + "dbname=" + quoted(dbname);
}

bool is_database_name(const std::string& name) {
  return !name.empty() && name.size() <= 63 &&
         name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
}

std::string dbname_of(const settings::Database& db) {
  return parse_dsn(db).get("dbname");
}

void validate_dsn(const settings::Database& db) {
  ParsedDsn dsn = parse_dsn(db);
  auto refuse = [&db](const std::string& msg, const std::string& hint) {
    throw Error(Exit::config, "database.dsn " + msg, hint, db.where);
  };
  if (!dsn.get("password").empty()) {
    refuse("contains a password", "remove it; put the password in database.password_file (mode "
                                  "0600) or the systemd credential " +
                                      db.password_credential);
  }
  std::string mode = dsn.get("sslmode");
  if (!mode.empty() && mode != "verify-full") {
    refuse("asks for sslmode=" + mode + ", weaker than verify-full",
           "remove sslmode from the dsn (lethe always uses verify-full) or set it to verify-full");
  }
  if (!dsn.get("sslrootcert").empty()) {
    refuse("sets sslrootcert", "set database.sslrootcert instead");
  }
  std::string hosts = dsn.get("host");
  std::string addrs = dsn.get("hostaddr");
  if (hosts.empty() && addrs.empty()) {
    refuse("names no host, so libpq would use a Unix socket without TLS",
           "add host=NAME (the name in the server certificate)");
  }
  size_t start = 0;
  while (start <= hosts.size() && !hosts.empty()) {
    size_t end = hosts.find(',', start);
    std::string h = hosts.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (h.starts_with('/') || h.starts_with('@')) {
      refuse("names the Unix socket " + h + ", which carries no TLS",
             "connect over TCP with host=NAME (C9: TLS on every channel)");
    }
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
}

util::Secret read_password(const settings::Database& db) {
  if (!db.password_file.empty()) {
    return util::read_secret_file(db.password_file, "database password");
  }
  std::filesystem::path cred = util::systemd_credential(db.password_credential);
  if (!cred.empty()) {
    return util::read_secret_file(cred, "database password credential");
  }
  return {};
}

std::unique_ptr<Session> connect(const settings::Settings& s) {
  const settings::Database& db = s.database;
  validate_dsn(db);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(db.sslrootcert, ec)) {
    throw Error(Exit::config, "database.sslrootcert " + db.sslrootcert + " is not a readable file",
                "point it at the PEM file of the CA that signed the server certificate", db.where);
  }
  std::string conninfo = db.dsn;
  if (!conninfo.empty() && conninfo.find("://") != std::string::npos) {
    // URIs take extra settings as query parameters; convert through keyword form instead.
    ParsedDsn parsed = parse_dsn(db);
    conninfo.clear();
    for (const auto& [k, v] : parsed.options) {
      conninfo += k + "=" + conninfo_quote(v) + " ";
    }
  }
  conninfo += " sslmode=verify-full sslrootcert=" + conninfo_quote(db.sslrootcert);
  conninfo += " connect_timeout=" + std::to_string(db.connect_timeout_s);
  conninfo += " application_name=lethe";
  util::Secret password = read_password(db);
  auto session = std::unique_ptr<Session>(new Session());
  try {
    t_last_handle = nullptr;
    t_password = password.empty() ? nullptr : &password;
    session->m_impl->conn = std::make_unique<Connection>(conninfo);
    t_password = nullptr;
    Connection& c = *session->m_impl->conn;
    // COPY goes through the raw handle, so libpqxx must never swap it for a new connection.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    // Deprecated in 6.x but still active by default there; 7.x removed reactivation altogether.
    c.inhibit_reactivation(true);
#pragma GCC diagnostic pop
    session->m_impl->raw = t_last_handle;
    PQsetNoticeProcessor(session->m_impl->raw, drop_notice, nullptr);
    session->m_impl->endpoint = std::string(c.hostname() ? c.hostname() : "?") + ":" +
                                (c.port() ? c.port() : "?") + "/" + (c.dbname() ? c.dbname() : "?");
    pqxx::nontransaction tx(c);
    tx.exec("SET TIME ZONE 'UTC'");
    // lethe's statements are short key lookups; JIT compiling them costs more than it saves
    // (seen: 170 ms of JIT for a 35 ms batch query).
    tx.exec("SET jit = off");
    tx.exec("SET lock_timeout = " + std::to_string(db.lock_timeout_ms));
    tx.exec("SET statement_timeout = " + std::to_string(db.statement_timeout_ms));
  } catch (...) {
    t_password = nullptr;
    password.wipe();
    rethrow_db_error(nullptr);
  }
  password.wipe();
  return session;
}

std::string array_literal(const std::vector<Value>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    if (!values[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *values[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

void copy_field(std::string& line, const Value& v) {
  if (!v) {
    line += "\\N";
    return;
  }
  for (char c : *v) {
    switch (c) {
    case '\\':
      line += "\\\\";
      break;
    case '\t':
      line += "\\t";
      break;
    case '\n':
      line += "\\n";
      break;
    case '\r':
      line += "\\r";
      break;
    default:
      line += c;
    }
  }
}

std::string quote_ident(std::string_view name) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view part =
        name.substr(start, dot == std::string_view::npos ? name.npos : dot - start);
    out += '"';
    for (char c : part) {
      if (c == '"') {
        out += '"';
      }
      out += c;
    }
    out += '"';
    if (dot == std::string_view::npos) {
      break;
    }
    out += '.';
    start = dot + 1;
  }
  return out;
}

std::string quote_literal(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += '\'';
    }
    out += c;
  }
  return out + "'";
}

} // namespace lethe::db
