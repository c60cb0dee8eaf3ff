// What `quire client submit` was asked to ingest: files and folders from disk (recursively,
// chosen by content sniffing, not by name), or the rows of a CSV of origins with DLCS-style
// columns. Problems with one file or line become that item's error; problems with the request
// as a whole (a missing path, a CSV without an `origin` column) are returned as kInvalid.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace quire::client {

struct Item {
  std::string label;  // what the person recognises: a path as given, or "FILE line N"
  std::string id;     // the image id
  int64_t space = 0;
  std::string media_type;
  // Files: the path to upload. CSV rows: empty, and `origin` is set.
  std::string path;
  int64_t size = 0;
  std::string origin;
  nlohmann::json extra = nlohmann::json::object();  // other image properties from the CSV
  std::string error;                                // set: the item fails without a request
};

// Files below `paths` (each a file or a folder, walked recursively; dot-files skipped), in a
// stable order. The image id of a file is its path relative to the folder given, '/' → '_'
// (a file given directly: its name). Files that are not images by their first bytes, empty
// files and repeated ids carry an error; a PDF is an image of family I (the server splits it
// into pages). kInvalid when a path does not exist.
Result<std::vector<Item>> ScanFiles(const std::vector<std::string>& paths, int64_t space);

// Rows of the CSV at `csv_path`. A header row names the columns (case-insensitive): origin
// (required), id, space (else `default_space`), mediaType (else told from the origin's
// extension), string1..3, number1..3, tags, roles and deliveryChannels (';'-separated),
// maxUnauthorised. kInvalid when the file cannot be read or a required column is missing.
Result<std::vector<Item>> ReadCsv(const std::string& csv_path, int64_t default_space);

// Splits one CSV record (RFC 4180 quoting); exposed for tests.
std::vector<std::vector<std::string>> ParseCsvText(const std::string& text);

}  // namespace quire::client
