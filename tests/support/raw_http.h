// Raw HTTP over loopback sockets, for tests of what a well-behaved client would never send.
#pragma once

#include <chrono>
#include <string>

namespace quire::test {

// The port of "http://127.0.0.1:PORT".
int Port(const std::string& url);
// A connected loopback socket, or -1.
int Connect(int port);
// A socket listening on 127.0.0.1 at a free port (set in *port); throws std::runtime_error
// naming `who` when it cannot.
int ListenLoopback(const char* who, int* port, int backlog = 128);
void SendAll(int fd, const std::string& bytes);

struct ReadResult {
  std::string bytes;
  bool closed = false;  // the server closed the connection (EOF or reset)
};
// Reads until the server closes, `until` appears in what was read, or `timeout` passes.
ReadResult ReadFor(int fd, std::chrono::milliseconds timeout, const std::string& until = "");
// Reads one whole response (headers and a Content-Length body), or until the server closes
// or `timeout` passes; then waits `linger` more for anything else (a second, smuggled answer).
ReadResult ReadResponse(int fd, std::chrono::milliseconds timeout,
                        std::chrono::milliseconds linger = std::chrono::milliseconds(100));
// Status lines in `bytes` (not the text of a body).
int CountResponses(const std::string& bytes);
// The status code of the first response in `bytes`, 0 when there is none.
int FirstStatus(const std::string& bytes);

}  // namespace quire::test
