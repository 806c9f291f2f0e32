// RFC 5424 syslog over UDP (RFC 5426) or TCP with octet counting (RFC 6587).
#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include "audit/audit_internal.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace medinfer::audit {

struct SyslogSink::Impl {
  std::string host, app_name, hostname;
  std::uint16_t port = 0;
  Transport transport = Transport::kUdp;
  std::mutex mutex;
  int fd = -1;

  std::string where() const {
    return "syslog " + std::string(transport == Transport::kUdp ? "udp" : "tcp") + "://" + host + ":" +
           std::to_string(port);
  }

  // Resolves and connects (UDP: a connected datagram socket). Returns an errno-style message or "".
  std::string connect_socket() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = transport == Transport::kUdp ? SOCK_DGRAM : SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) return std::string("cannot resolve: ") + gai_strerror(rc);
    std::string error = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      const int s = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (s < 0) {
        error = std::strerror(errno);
        continue;
      }
      if (::connect(s, a->ai_addr, a->ai_addrlen) == 0) {
        fd = s;
        error.clear();
        break;
      }
      error = std::strerror(errno);
      ::close(s);
    }
    ::freeaddrinfo(res);
    return error;
  }

  bool send_all(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (transport == Transport::kUdp) return static_cast<std::size_t>(n) == bytes.size();
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
};

std::shared_ptr<SyslogSink> SyslogSink::open(const std::string& host, std::uint16_t port, Transport transport,
                                             const std::string& app_name) {
  auto impl = std::make_unique<Impl>();
  impl->host = host;
  impl->port = port;
  impl->transport = transport;
  impl->app_name = app_name.empty() ? "medinfer" : app_name;
  impl->hostname = detail::host_name();
  const std::string error = impl->connect_socket();
  if (!error.empty()) throw Error(ErrorCode::kIo, impl->where() + ": " + error);
  return std::shared_ptr<SyslogSink>(new SyslogSink(std::move(impl)));
}

SyslogSink::SyslogSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SyslogSink::~SyslogSink() {
  if (impl_->fd >= 0) ::close(impl_->fd);
}

void SyslogSink::write(const Record& record) {
  // PRI = facility 13 (log audit) * 8 + severity (6 informational, 3 error).
  const int pri = 13 * 8 + (record.outcome == Outcome::kError ? 3 : 6);
  const std::string msg = "<" + std::to_string(pri) + ">1 " + record.timestamp + " " + impl_->hostname + " " +
                          impl_->app_name + " " + std::to_string(::getpid()) + " " + to_string(record.event) +
                          " - " + to_json_line(record);
  const std::string frame = impl_->transport == Transport::kTcp ? std::to_string(msg.size()) + " " + msg : msg;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (impl_->fd >= 0 && impl_->send_all(frame)) return;
  const int first_error = errno;
  if (impl_->transport == Transport::kTcp) {  // the collector may have restarted: reconnect once
    if (impl_->connect_socket().empty() && impl_->send_all(frame)) return;
  }
  throw Error(ErrorCode::kAuditFailed,
              impl_->where() + ": cannot send the audit record: " + std::strerror(first_error ? first_error : errno));
}

}  // namespace medinfer::audit
