// Child programs of the tests (node scripts driving Chromium, promtool, pdfinfo, quire itself
// with flags it must refuse) run through the shell, their standard output kept.
#pragma once

#include <string>

namespace quire::test {

// Runs `command` with /bin/sh; its standard output (standard error passes through unless the
// command redirects it). `*exit_code` is the exit status, or -1 when it did not exit normally.
std::string RunCommand(const std::string& command, int* exit_code);

// `s` as one shell word.
std::string ShellQuote(const std::string& s);

// The last non-empty line of `out`: where a script prints its one-line JSON report.
std::string LastLine(const std::string& out);

}  // namespace quire::test
