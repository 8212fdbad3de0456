// libpq and libpqxx failures as lethe's errors (see errors_internal.hpp), and the redaction of
// the server's connection messages.
#include "worker/db/errors_internal.hpp"

#include <pqxx/pqxx>

namespace lethe::db {
namespace {

Exit classify_sqlstate(const std::string& state) {
  if (state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03" ||
      state == "55P03" || state == "40001" || state == "40P01" || state == "53300") {
    return Exit::temporary;
  }
  if (state.starts_with("28") || state == "42501") {
    return Exit::permission;
  }
  if (state.starts_with("42") || state.starts_with("3F")) {
    return Exit::config;
  }
  return Exit::internal;
}

std::string tls_hint(const std::string& msg) {
  if (msg.find("does not support SSL") != std::string::npos) {
    return "the server offers no TLS: set ssl=on in postgresql.conf and use hostssl lines in "
           "pg_hba.conf (C9)";
  }
  if (msg.find("does not match host name") != std::string::npos) {
    return "the server certificate is not for the host in database.dsn: connect by the name "
           "(or IP) the certificate names, or reissue the certificate";
  }
  if (msg.find("certificate") != std::string::npos || msg.find("SSL") != std::string::npos) {
    return "check database.sslrootcert: it must be the CA that signed the server certificate";
  }
  return {};
}

// libpqxx 6 leaves sqlstate() empty when it throws one of its specific subclasses; recover the
// code from the class.
std::string sqlstate_of(const pqxx::sql_error& e) {
  if (!e.sqlstate().empty()) {
    return e.sqlstate();
  }
  const std::exception* p = &e;
  auto is = [p](auto* tag) { return dynamic_cast<decltype(tag)>(p) != nullptr; };
  using namespace pqxx;
  if (is(static_cast<const insufficient_privilege*>(nullptr)))
    return "42501";
  if (is(static_cast<const undefined_table*>(nullptr)))
    return "42P01";
  if (is(static_cast<const undefined_column*>(nullptr)))
    return "42703";
  if (is(static_cast<const undefined_function*>(nullptr)))
    return "42883";
  if (is(static_cast<const syntax_error*>(nullptr)))
    return "42601";
  if (is(static_cast<const unique_violation*>(nullptr)))
    return "23505";
  if (is(static_cast<const foreign_key_violation*>(nullptr)))
    return "23503";
  if (is(static_cast<const not_null_violation*>(nullptr)))
    return "23502";
  if (is(static_cast<const check_violation*>(nullptr)))
    return "23514";
  if (is(static_cast<const restrict_violation*>(nullptr)))
    return "23001";
  if (is(static_cast<const integrity_constraint_violation*>(nullptr)))
    return "23000";
  if (is(static_cast<const data_exception*>(nullptr)))
    return "22000";
  if (is(static_cast<const feature_not_supported*>(nullptr)))
    return "0A000";
  if (is(static_cast<const disk_full*>(nullptr)))
    return "53100";
  if (is(static_cast<const out_of_memory*>(nullptr)))
    return "53200";
  if (is(static_cast<const insufficient_resources*>(nullptr)))
    return "53000";
  if (is(static_cast<const plpgsql_raise*>(nullptr)))
    return "P0001";
  if (is(static_cast<const invalid_cursor_name*>(nullptr)))
    return "34000";
  if (is(static_cast<const invalid_sql_statement_name*>(nullptr)))
    return "26000";
  if (is(static_cast<const invalid_cursor_state*>(nullptr)))
    return "24000";
  return "XX000";
}

// Lethe's own words for a SQLSTATE class. The server's text is never shown: a message, DETAIL
// or HINT can quote row data (a trigger's RAISE, "Failing row contains …").
std::string describe_sqlstate(const std::string& state) {
  static const std::pair<const char*, const char*> k_classes[] = {
      {"08", "the connection failed"},
      {"0A", "a feature the server does not support"},
      {"22", "a value does not fit its column"},
      {"23", "a constraint refused the change"},
      {"25", "the transaction is in the wrong state"},
      {"28", "the server refused the login"},
      {"3F", "a schema is missing"},
      {"40", "the transaction was rolled back (deadlock or serialization)"},
      {"42", "the statement names something missing or not allowed"},
      {"53", "the server is out of a resource (disk, memory, connections)"},
      {"54", "a server limit was exceeded"},
      {"55", "an object is not available (locked or in use)"},
      {"57", "the server cancelled the statement or is shutting down"},
      {"58", "the server had a system error"},
      {"P0", "a trigger or function in the database raised an error"},
      {"XX", "the server had an internal error"},
  };
  if (state == "55P03") {
    return "a lock could not be had within lock_timeout";
  }
  if (state == "57014") {
    return "the statement was cancelled (statement_timeout)";
  }
  for (const auto& [cls, text] : k_classes) {
    if (state.compare(0, 2, cls) == 0) {
      return text;
    }
  }
  return "the server reported an error";
}

std::string hint_for(const std::string& state) {
  if (state == "42501") {
    return "the role lacks a privilege: apply `lethe grants` as the database owner";
  }
  if (state == "42P01") {
    return "a table or view is missing: run `lethe migrate`, apply `lethe grants` as the "
           "database owner, then `lethe config check`";
  }
  if (state.starts_with("23") || state.starts_with("P0")) {
    return "the database refused the change; its message is not shown because it can quote row "
           "data: read it in the server log, then fix the constraint or trigger named here";
  }
  return "the server's message is not shown because it can quote row data; the server log has it";
}

} // namespace

Exit classify(const std::string& state) {
  if (state.starts_with("22") || state.starts_with("23") || state.starts_with("P0")) {
    return Exit::data;
  }
  return classify_sqlstate(state);
}

// "database error 23514 (a constraint refused the change) on public.t, column c, constraint k":
// the names come from the error's own fields, never from its text.
DbError server_error(const std::string& state, const PGresult* r) {
  auto field = [r](int code) {
    const char* v = r != nullptr ? PQresultErrorField(r, code) : nullptr;
    return std::string(v != nullptr ? v : "");
  };
  std::string msg =
      "database error " + (state.empty() ? "?" : state) + " (" + describe_sqlstate(state) + ")";
  std::string schema = field(PG_DIAG_SCHEMA_NAME);
  std::string table = field(PG_DIAG_TABLE_NAME);
  if (!table.empty()) {
    msg += " on " + (schema.empty() ? "" : schema + ".") + table;
  }
  std::string column = field(PG_DIAG_COLUMN_NAME);
  if (!column.empty()) {
    msg += ", column " + column;
  }
  std::string constraint = field(PG_DIAG_CONSTRAINT_NAME);
  if (!constraint.empty()) {
    msg += ", constraint " + constraint;
  }
  return DbError(classify(state), msg, state, hint_for(state));
}

DbError connection_lost() {
  // 75: nothing is lost (each batch is its own transaction, the rest was rolled back) and the
  // cause is usually passing (restart, failover, a terminated backend): retry later.
  return DbError(Exit::temporary, "connection to the database was lost", "08006",
                 "check that the server is up (restart, failover, or a terminated backend); what "
                 "was committed stays, and the next run continues where this one stopped");
}

// Turns the exception in flight into an Error. `session` is the connection's raw handle when
// it was open (so a broken connection means it was lost), null while connecting.
[[noreturn]] void rethrow_db_error(PGconn* session) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    throw DbError(Exit::temporary, "connection lost during commit; the outcome is unknown", "08007",
                  "run the job again: every step lethe takes can be repeated safely");
  } catch (const pqxx::broken_connection& e) {
    if (session != nullptr) {
      throw connection_lost();
    }
    // libpq's connection error text, every host attempt: host, port, user, TLS; no row data.
    std::string msg = describe_connection_failure(e.what());
    std::string hint = tls_hint(e.what());
    if (!hint.empty()) {
      throw TlsRefused(Exit::unavailable, "TLS connection to the database refused: " + msg, hint);
    }
    throw DbError(Exit::unavailable, "database connection failed: " + msg, "08000",
                  "check that the server is up and database.dsn names it; lethe retries on the "
                  "next timer run");
  } catch (const pqxx::sql_error& e) {
    throw server_error(sqlstate_of(e), nullptr);
  } catch (const pqxx::failure&) {
    if (session != nullptr && PQstatus(session) != CONNECTION_OK) {
      throw connection_lost();
    }
    throw DbError(Exit::temporary, "database failure (the client library's text is not shown)", "",
                  "run the job again; if it persists, read the server log");
  }
}

std::string redact_server_message(std::string_view message) {
  std::string_view first = message.substr(0, message.find('\n'));
  for (std::string_view prefix : {"ERROR:  ", "FATAL:  ", "ERROR: ", "FATAL: "}) {
    if (first.starts_with(prefix)) {
      first.remove_prefix(prefix.size());
    }
  }
  std::string out;
  size_t i = 0;
  while (i < first.size()) {
    if (first.substr(i).starts_with(": \"")) {
      size_t close = first.rfind('"');
      if (close > i + 2) {
        out += ": \"…\"";
        i = close + 1;
        continue;
      }
    }
    out += first[i];
    ++i;
  }
  return out;
}

std::string describe_connection_failure(std::string_view message) {
  std::string out;
  while (!message.empty()) {
    size_t end = message.find('\n');
    std::string_view line = message.substr(0, end);
    message = end == std::string_view::npos ? std::string_view{} : message.substr(end + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      line.remove_prefix(1);
    }
    if (line.empty() || line.starts_with("Is the server running")) {
      continue;
    }
    out += (out.empty() ? "" : "; ") + redact_server_message(line);
  }
  return out;
}

} // namespace lethe::db
