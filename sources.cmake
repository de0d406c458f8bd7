# sources.cmake -- foldline's source files, one list per library, relative to the repository root.
# The one list: CMakeLists.txt builds foldline from it, and tests/sanitize/ builds the same files under
# AddressSanitizer and UBSan. A new file goes here, and into both builds at once.

# Everything that is not tensor arithmetic (C11).
set(FOLDLINE_CORE_SOURCES
  dist/error.c
  dist/group.c
  dist/jobq.c
  dist/jobstatus.c
  dist/manifest.c
  dist/outpath.c
  dist/place.c
  dist/progress.c
  dist/runstatus.c
  dist/stop.c
  dist/nccl.c
  dist/tempfile.c
  dist/outpath.c
  dist/vote.c
  dist/vote_calib.c
  dist/vote_fit.c
  dist/vote_html.c
  dist/vote_html_charts.c
  dist/vote_labels.c
  dist/vote_report.c
  dist/vote_sum.c
  dist/vote_weights.c
  dist/world.c
  dataset/csv.c
  dataset/datafile.c
  dataset/datafile_check.c
  dataset/folds.c
  dataset/h5seal.c
  dataset/h5util.c
  dataset/idx.c
  dataset/image.c
  dataset/imagelist.c
  dataset/featcache.c
  dataset/loader.c
  dataset/preds.c
  dataset/prep.c
  dataset/resize.c
  dataset/source.c
  dataset/strmap.c
  dataset/verified.c
  launch/config.c
  launch/config_model.c
  launch/config_set.c
  launch/config_walk.c)

# The libtorch bridge, the only C++17.
set(FOLDLINE_TORCH_SOURCES
  trainer/torch/amp.cpp
  trainer/torch/bridge_core.cpp
  trainer/torch/images.cpp
  trainer/torch/model_api.cpp
  trainer/torch/model_comm.cpp
  trainer/torch/model_overlap.cpp
  trainer/torch/model_state.cpp
  trainer/torch/nets.cpp
  trainer/torch/warp.cpp
  trainer/torch/torchscript.cpp
  trainer/torch/export.cpp)

# The training loop (C): the part that needs no libtorch (in the executable)...
set(FOLDLINE_TRAINER_SOURCES
  trainer/augment.c
  trainer/joblock.c
  trainer/job_monitor.c
  trainer/order.c
  trainer/run.c
  trainer/schedule.c
  trainer/settings.c
  trainer/tfevents.c)

# ... and the part that calls the bridge (in the libtorch module).
set(FOLDLINE_TRAINER_TORCH_SOURCES
  trainer/fused.c
  trainer/job.c
  trainer/predict.c)

# The command: the executable, whose verbs start without libtorch...
set(FOLDLINE_CLI_SOURCES
  launch/main.c
  launch/cli_common.c
  launch/cli_inspect.c
  launch/cli_prep.c
  launch/cli_status.c
  launch/cli_version.c
  launch/cli_vote.c
  launch/torch_load.c)

# ... and the verbs that need libtorch, with the entry table of the module libfoldline_torch.so
# that holds them and FOLDLINE_TORCH_SOURCES (launch/torch_module.h).
set(FOLDLINE_CLI_TORCH_SOURCES
  launch/cli_predict.c
  launch/cli_export.c
  launch/cli_train.c
  launch/train_data.c
  launch/train_plan.c
  launch/torch_verbs.c)
