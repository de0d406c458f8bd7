# sources.cmake -- foldline's source files, one list per library, relative to the repository root.
# The one list: CMakeLists.txt builds foldline from it, and tests/sanitize/ builds the same files under
# AddressSanitizer and UBSan. A new file goes here, and into both builds at once.

# Everything that is not tensor arithmetic (C11): base/, dataset/, dist/, vote/, the run state files of
# trainer/ (jobstatus, runstatus) and config/.
set(FOLDLINE_CORE_SOURCES
  base/cores.c
  base/error.c
  base/names.c
  base/outpath.c
  base/progress.c
  base/stop.c
  base/strmap.c
  base/tempfile.c
  dataset/csv.c
  dataset/datafile.c
  dataset/datafile_check.c
  dataset/featcache.c
  dataset/folds.c
  dataset/h5seal.c
  dataset/h5util.c
  dataset/idx.c
  dataset/image.c
  dataset/imagelist.c
  dataset/loader.c
  dataset/preds.c
  dataset/prep.c
  dataset/resize.c
  dataset/source.c
  dataset/verified.c
  dist/group.c
  dist/jobq.c
  dist/nccl.c
  dist/place.c
  dist/world.c
  vote/manifest.c
  vote/vote.c
  vote/vote_calib.c
  vote/vote_fit.c
  vote/vote_html.c
  vote/vote_html_charts.c
  vote/vote_labels.c
  vote/vote_report.c
  vote/vote_sum.c
  vote/vote_weights.c
  trainer/jobstatus.c
  trainer/runstatus.c
  config/config.c
  config/config_model.c
  config/config_set.c
  config/config_walk.c)

# The libtorch bridge, the only C++17.
set(FOLDLINE_TORCH_SOURCES
  trainer/torch/amp.cpp
  trainer/torch/bridge_core.cpp
  trainer/torch/devpath.cpp
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
  trainer/fused_cache.c
  trainer/fused_dev.c
  trainer/fused_epoch.c
  trainer/fused_predict.c
  trainer/job.c
  trainer/job_checkpoint.c
  trainer/job_epoch.c
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
  launch/train_jobs.c
  launch/train_plan.c
  launch/train_rundir.c
  launch/torch_verbs.c)
