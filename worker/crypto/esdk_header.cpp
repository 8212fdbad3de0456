// The ESDK message header: writing its fields, parsing it, and the format errors.
#include "worker/crypto/esdk_internal.hpp"

#include <cstdio>

namespace lethe::crypto::esdk {
namespace detail {

void put_u16(Bytes& out, size_t v) {
  out.push_back(static_cast<unsigned char>(v >> 8));
  out.push_back(static_cast<unsigned char>(v));
}
void put_u32(Bytes& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) {
    out.push_back(static_cast<unsigned char>(v >> s));
  }
}
void put_u64(Bytes& out, std::uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) {
    out.push_back(static_cast<unsigned char>(v >> s));
  }
}
void put_bytes(Bytes& out, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  out.insert(out.end(), b, b + n);
}
void put_string16(Bytes& out, const std::string& s) {
  put_u16(out, s.size());
  put_bytes(out, s.data(), s.size());
}

namespace {

bool legacy_suite(std::uint64_t id) {
  switch (id) {
  case 0x0014:
  case 0x0046:
  case 0x0078:
  case 0x0114:
  case 0x0146:
  case 0x0178:
  case 0x0214:
  case 0x0346:
  case 0x0378:
    return true;
  default:
    return false;
  }
}

Context parse_context(const unsigned char* p, size_t n) {
  Reader r{p, n};
  size_t count = static_cast<size_t>(r.uint(2));
  if (!r.ok || count == 0) {
    throw FormatError(Fault::malformed_header, "the encryption context says it has no pairs");
  }
  Context ctx;
  std::string previous;
  for (size_t i = 0; i < count; ++i) {
    std::string key = r.string16();
    std::string value = r.string16();
    if (!r.ok) {
      throw FormatError(Fault::malformed_header, "the encryption context is cut short");
    }
    if (i > 0 && !(previous < key)) {
      throw FormatError(Fault::malformed_header,
                        "encryption context keys are duplicated or not in byte order");
    }
    if (key.rfind(k_reserved_prefix, 0) == 0) {
      throw FormatError(Fault::reserved_context_key,
                        "the encryption context holds the reserved key '" + key +
                            "', which an unsigned message must not carry");
    }
    previous = key;
    ctx.emplace(std::move(key), std::move(value));
  }
  if (r.pos != n) {
    throw FormatError(Fault::malformed_header, "bytes left over after the encryption context");
  }
  return ctx;
}

} // namespace

// One pass over the header's fields in the order the message format lays them out
// (ESDK-NOTES.md); kept whole so it reads against the spec field by field.
std::optional<Header> parse_header(const unsigned char* p, size_t n, size_t max_wrapped) {
  Reader r{p, n};
  std::uint64_t version = r.uint(1);
  if (!r.ok) {
    return std::nullopt;
  }
  if (version == 1) {
    throw FormatError(Fault::legacy_suite, "message format version 1 carries only suites without "
                                           "key commitment");
  }
  if (version != 2) {
    throw FormatError(Fault::bad_version,
                      "unknown message format version " + std::to_string(version));
  }
  std::uint64_t suite = r.uint(2);
  if (!r.ok) {
    return std::nullopt;
  }
  if (legacy_suite(suite)) {
    throw FormatError(Fault::legacy_suite, "algorithm suite without key commitment");
  }
  if (suite != k_suite_id) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%04llx", static_cast<unsigned long long>(suite));
    throw FormatError(Fault::unsupported_suite,
                      std::string("algorithm suite ") + buf + " is not supported (only 0x0478)");
  }
  Header h;
  r.copy(h.message_id);
  size_t aad_len = static_cast<size_t>(r.uint(2));
  if (!r.have(aad_len)) {
    return std::nullopt;
  }
  if (aad_len > 0) {
    h.context = parse_context(p + r.pos, aad_len);
  }
  r.pos += aad_len;
  size_t count = static_cast<size_t>(r.uint(2));
  if (!r.ok) {
    return std::nullopt;
  }
  if (count == 0) {
    throw FormatError(Fault::malformed_header, "the message carries no wrapped data key");
  }
  if (count > max_wrapped) {
    throw FormatError(Fault::too_many_wrapped_keys,
                      "the message carries " + std::to_string(count) +
                          " wrapped data keys, more than the limit of " +
                          std::to_string(max_wrapped));
  }
  for (size_t i = 0; i < count; ++i) {
    WrappedKey k;
    k.provider_id = r.string16();
    k.provider_info = r.string16();
    k.ciphertext = r.string16();
    if (!r.ok) {
      return std::nullopt;
    }
    h.wrapped.push_back(std::move(k));
  }
  std::uint64_t content_type = r.uint(1);
  h.frame_length = static_cast<std::uint32_t>(r.uint(4));
  r.copy(h.commitment);
  if (!r.ok) {
    return std::nullopt;
  }
  if (content_type != 2) {
    throw FormatError(Fault::malformed_header,
                      "content type " + std::to_string(content_type) + " is not framed (2)");
  }
  if (h.frame_length == 0 || h.frame_length > k_max_frame_length) {
    throw FormatError(Fault::malformed_header,
                      "frame length " + std::to_string(h.frame_length) + " is out of range");
  }
  h.body_length = r.pos;
  r.copy(h.tag);
  if (!r.ok) {
    return std::nullopt;
  }
  h.total_length = r.pos;
  return h;
}

} // namespace detail

using namespace detail;

const char* fault_name(Fault f) {
  switch (f) {
  case Fault::truncated:
    return "truncated";
  case Fault::bad_version:
    return "bad_version";
  case Fault::legacy_suite:
    return "legacy_suite";
  case Fault::unsupported_suite:
    return "unsupported_suite";
  case Fault::malformed_header:
    return "malformed_header";
  case Fault::reserved_context_key:
    return "reserved_context_key";
  case Fault::too_many_wrapped_keys:
    return "too_many_wrapped_keys";
  case Fault::no_matching_key:
    return "no_matching_key";
  case Fault::wrong_key:
    return "wrong_key";
  case Fault::commitment_mismatch:
    return "commitment_mismatch";
  case Fault::header_auth_failed:
    return "header_auth_failed";
  case Fault::bad_sequence:
    return "bad_sequence";
  case Fault::bad_frame_iv:
    return "bad_frame_iv";
  case Fault::final_frame_too_long:
    return "final_frame_too_long";
  case Fault::frame_auth_failed:
    return "frame_auth_failed";
  case Fault::trailing_bytes:
    return "trailing_bytes";
  }
  return "unknown";
}

FormatError::FormatError(Fault fault, const std::string& detail)
    : Error(
          Exit::data,
          "encrypted message refused (" + std::string(fault_name(fault)) + "): " + detail,
          fault == Fault::no_matching_key || fault == Fault::wrong_key
              ? "pass the private key, --key-namespace and --key-name the message was encrypted to"
              : "the file is damaged, truncated or was altered: restore it from another copy"),
      m_fault(fault) {}

size_t parse_header_only(const unsigned char* data, size_t n, size_t max_wrapped_keys,
                         Context* context) {
  std::optional<Header> h = parse_header(data, n, max_wrapped_keys);
  if (!h) {
    return 0;
  }
  if (context != nullptr) {
    *context = h->context;
  }
  return h->total_length;
}

} // namespace lethe::crypto::esdk
