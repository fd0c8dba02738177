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
    case Kind::FloatList: return "list of numbers";
  }
  return "?";
}

namespace {
Field required(Field f) {
  f.required = true;
  return f;
}
Field choice(std::string key, std::string dflt, std::string help, std::vector<std::string> choices) {
  Field f{std::move(key), Kind::Enum, std::move(dflt), std::move(help)};
  f.choices = std::move(choices);
  return f;
}
Field optional(Field f) {
  f.optional = true;
  return f;
}
Field or_all(Field f) {
  f.allows_all = true;
  return f;
}

// One network of the zoo: an expert (one domain, optionally a class subset),
// the multi-domain expert or the generic model (several domains).
Field model_spec(const std::string& key, const std::string& help) {
  Field m{key, Kind::Map, "", help};
  m.fields = {
      required({"name", Kind::String, "", "zoo entry name (multi-domain views become <name>/<domain>)"}),
      choice("arch", "resnet8", "architecture", {"resnet8", "resnet14", "resnet20", "cnn"}),
      {"width", Kind::Int, "8", "channels of the first stage (stages: w, 2w, 4w)", 2, 256},
      required({"domains", Kind::StringList, "", "source domain(s) it is trained on"}),
      {"classes", Kind::StringList, "[]", "class names to keep (one domain only); empty = all"},
      {"epochs", Kind::Int, "0", "training epochs; 0 = zoo.train.epochs", 0, 1000},
  };
  return m;
}
}  // namespace

const Field& root_schema() {
  static const Field root = [] {
    Field task{"task", Kind::Map, "", "one few-shot target task"};
    task.fields = {
        {"name", Kind::String, "", "unique task name (default: the data set's name)"},
        required({"dataset", Kind::String, "", "packed domain to sample from, e.g. opencv-digits"}),
        {"classes", Kind::StringList, "[]", "class names to keep; empty = every class"},
        or_all({"shots", Kind::Int, "10",
                "training images per class (the validation split is carved from them); all = every training image",
                1, 100000}),
        {"seed", Kind::Int, "0", "seed of the sample", 0, 9.0e15},
        optional(or_all({"shot_grid", Kind::FloatList, "",
                  "several shot counts: one task each (overrides shots), named <name>-<shots>shot-s<seed> "
                  "(<name>-all-s<seed> for all)"})),
        {"seeds", Kind::Int, "1", "samples per shot count, with seeds seed, seed + 1, ...", 1, 1000},
        {"val_fraction", Kind::Float, "0.2", "share of each class's shots held out to choose the lr", 0.0, 0.9},
        {"test_per_class", Kind::Int, "0", "test images per class; 0 = all of them", 0, 1000000},
        {"drop_small_classes", Kind::Bool, "false", "drop classes with fewer training images than shots (else an error)"},
        optional({"min_steps", Kind::Int, "",
                  "this task's floor on the optimisation steps of a fine-tune (many classes at few shots need more); "
                  "absent = finetune.min_steps", 0, 10000000}),
    };
    Field data{"data", Kind::Map, "", "packed data sets"};
    data.fields = {
        {"dir", Kind::String, "data", "where packed domains live (ZOOBENCH_DATA_DIR overrides)"},
        {"domains", Kind::StringList, "[all]", "domains to pack; 'all' = every built-in domain"},
    };
    Field tasks{"tasks", Kind::ListOfMaps, "[]", "few-shot target tasks"};
    tasks.fields = {task};

    Field train{"train", Kind::Map, "", "how zoobench trains its own zoo"};
    train.fields = {
        {"epochs", Kind::Int, "2", "epochs over each source's training images", 1, 1000},
        {"batch_size", Kind::Int, "64", "", 2, 4096},
        {"lr", Kind::Float, "0.05", "SGD learning rate (momentum 0.9, cosine decay)", 1e-6, 10},
        {"weight_decay", Kind::Float, "0.0005", "", 0, 1},
        {"max_images", Kind::Int, "8000", "training images per source domain (seeded subset); 0 = all", 0, 10000000},
        {"seed", Kind::Int, "0", "", 0, 9.0e15},
    };
    Field experts{"experts", Kind::ListOfMaps, "[]", "single-domain experts"};
    experts.fields = {model_spec("expert", "one expert")};
    Field zoo{"zoo", Kind::Map, "", "the model zoo"};
    zoo.fields = {
        {"dir", Kind::String, "zoo", "where weights and manifest.yaml live"},
        {"manifest", Kind::String, "", "use this existing manifest (e.g. TorchScript models) instead of training"},
        train,
        experts,
        optional(model_spec("multi_domain", "multi-domain expert: shared weights, per-domain BatchNorm and heads")),
        optional(model_spec("generic", "generic model trained on the union of its domains (the baseline to beat)")),
    };
    Field finetune{"finetune", Kind::Map, "", "ground truth: fine-tuning every (model, task) cell"};
    finetune.fields = {
        {"epochs", Kind::Int, "20", "epochs over the task's training images (at least)", 1, 10000},
        {"min_steps", Kind::Int, "0",
         "floor on the optimisation steps of one fine-tune (few-shot sets have a handful of batches per epoch): "
         "epochs rise until epochs x batches >= min_steps; 0 = epochs alone", 0, 10000000},
        {"batch_size", Kind::Int, "32", "", 1, 4096},
        {"lrs", Kind::FloatList, "[0.01, 0.005, 0.001]", "learning-rate grid; the best on validation is the ground truth"},
        {"momentum", Kind::Float, "0.9", "Nesterov momentum", 0, 0.999},
        {"weight_decay", Kind::Float, "0.0001", "", 0, 1},
        {"crop_padding", Kind::Int, "2", "random-crop augmentation: pad by this many pixels, crop back", 0, 16},
        optional({"decay_epochs", Kind::FloatList, "",
                  "epochs after which the lr is multiplied by 0.1, increasing (the seed paper: [15, 25] of 30); "
                  "absent = after 50 % and 83 % of the epochs"}),
        optional({"extend_edges", Kind::Bool, "",
                  "widen the grid where its edge binds: on a task where more than 20 % of the models choose the top "
                  "(bottom) lr while the mean validation accuracy there is still more than a point above its neighbour's, "
                  "every model also fine-tunes at 2 x top (bottom / 2); absent = false"}),
        {"flip_domains", Kind::StringList, "[fashion-mnist, emoji-google, emoji-twitter, openmoji-line]",
         "domains whose images may be flipped left-right (never digits or glyphs)"},
    };
    Field extract{"extract", Kind::Map, "", "features, source logits and gradient sketches per cell"};
    extract.fields = {
        {"max_per_class", Kind::Int, "25", "training images per class used by the scores (the paper's 25); 0 = all", 0, 1000000},
        {"batch_size", Kind::Int, "256", "", 1, 65536},
        {"lgc_projections", Kind::Int, "4", "m: Gaussian combinations of the logits for the NTK trace", 1, 64},
        {"sketch_dim", Kind::Int, "4096", "K: columns of the gradient sketch in all (m blocks of K/m, each a k1 x k2 Kronecker product)", 4, 1048576},
        {"cache", Kind::Bool, "true", "store the arrays under /features/<model>/<task> in results.h5"},
        {"probe_model", Kind::String, "", "RSA/DDS probe: this zoo entry, briefly fine-tuned on each task; empty = the generic entry"},
        {"probe_epochs", Kind::Int, "5", "epochs of the probe's fine-tune", 1, 1000},
        {"probe_lr", Kind::Float, "0.005", "lr of the probe's fine-tune (the RSA paper's)", 1e-6, 10},
        {"source_per_class", Kind::Int, "100", "Domain Similarity: source training images per class behind each class mean", 1, 1000000},
        {"lgc_memory_mb", Kind::Int, "1024", "TorchScript entries' LGC: MiB of per-sample gradients held before each projection (fewer = more sketch draws; same result)", 1, 1048576},
        {"score_memory_mb", Kind::Int, "8192", "MiB one score may allocate: a score that would need more (PARC and RSA hold N^2/2 pairs) is not computed; its cell gets n/a and a note naming the max_per_class that would fit", 1, 16777216},
    };
    Field execution{"execution", Kind::Map, "", "how `run` spreads the grid over MPI ranks and devices (may change on resume)"};
    execution.fields = {
        {"ranks_per_cell", Kind::Int, "1", "ranks per group; a group fine-tunes one unit data-parallel (must divide the ranks)", 1, 4096},
        choice("device", "auto", "where models compute: auto = CUDA when this build and node have it", {"auto", "cpu", "cuda"}),
    };
    Field r{"", Kind::Map, "", "an experiment"};
    r.fields = {
        {"name", Kind::String, "default", "experiment name; results go to <results_dir>/<name>/"},
        {"seed", Kind::Int, "0", "master seed", 0, 9.0e15},
        {"threads", Kind::Int, "0", "libtorch intra-op threads per rank; 0 = cores / ranks on the node", 0, 1024},
        {"results_dir", Kind::String, "results", "root of all experiment outputs"},
        execution,
        data,
        tasks,
        zoo,
        finetune,
        extract,
        {"selectors", Kind::StringList, "[lfc, leep, knn]", "scores to compute ('all' = every registered one)"},
    };
    return r;
  }();
  return root;
}

}  // namespace zoobench::config
