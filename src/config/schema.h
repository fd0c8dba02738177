// The config schema as data: one Field per key. Defaults live here only.
#pragma once
#include <limits>
#include <string>
#include <vector>

namespace zoobench::config {

enum class Kind { Map, ListOfMaps, Int, Float, Bool, String, Enum, StringList, FloatList };

struct Field {
  std::string key;
  Kind kind;
  std::string default_yaml;  // YAML text of the default; empty = required (or none for maps/lists)
  std::string help;
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // Enum
  std::vector<Field> fields;         // Map members, or the element of ListOfMaps
  bool required = false;
  bool optional = false;  // a Map that may be absent altogether (resolves to nothing)
  bool allows_all = false;  // Int or FloatList: the word "all" is a value too (shot counts)
};

const Field& root_schema();
const char* kind_name(Kind k);

}  // namespace zoobench::config
