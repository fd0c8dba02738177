#include "schema.h"

namespace zoobench::config {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Map: return "map";
    case Kind::ListOfMaps: return "list";
    case Kind::Int: return "integer";
    case Kind::Float: return "number";
    case Kind::Bool: return "boolean";
    case Kind::String: return "string";
    case Kind::Enum: return "one of";
    case Kind::StringList: return "list of strings";
  }
  return "?";
}

namespace {
Field required(Field f) {
  f.required = true;
  return f;
}
}  // namespace

const Field& root_schema() {
  static const Field root = [] {
    Field task{"task", Kind::Map, "", "one few-shot target task"};
    task.fields = {
        {"name", Kind::String, "", "unique task name (default: the data set's name)"},
        required({"dataset", Kind::String, "", "packed domain to sample from, e.g. opencv-digits"}),
        {"classes", Kind::StringList, "[]", "class names to keep; empty = every class"},
        {"shots", Kind::Int, "10", "training images per class (the validation split is carved from them)", 1, 100000},
        {"seed", Kind::Int, "0", "seed of the sample", 0, 9.0e15},
        {"val_fraction", Kind::Float, "0.2", "share of each class's shots held out to choose the lr", 0.0, 0.9},
        {"test_per_class", Kind::Int, "0", "test images per class; 0 = all of them", 0, 1000000},
        {"drop_small_classes", Kind::Bool, "false", "drop classes with fewer training images than shots (else an error)"},
    };
    Field data{"data", Kind::Map, "", "packed data sets"};
    data.fields = {
        {"dir", Kind::String, "data", "where packed domains live (ZOOBENCH_DATA_DIR overrides)"},
        {"domains", Kind::StringList, "[all]", "domains to pack; 'all' = every built-in domain"},
    };
    Field tasks{"tasks", Kind::ListOfMaps, "[]", "few-shot target tasks"};
    tasks.fields = {task};
    Field r{"", Kind::Map, "", "an experiment"};
    r.fields = {
        {"name", Kind::String, "default", "experiment name; results go to <results_dir>/<name>/"},
        {"seed", Kind::Int, "0", "master seed", 0, 9.0e15},
        {"threads", Kind::Int, "0", "libtorch threads per rank; 0 = cores / ranks on the node", 0, 1024},
        {"results_dir", Kind::String, "results", "root of all experiment outputs"},
        data,
        tasks,
    };
    return r;
  }();
  return root;
}

}  // namespace zoobench::config
