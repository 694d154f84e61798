"""Every file and folder name that more than one part of sweep relies on, in one place.

The job side (``sweep/job``) may import this module: it is pure constants.
"""

# --- a source dataset in the NIH ChestX-ray14 layout (read by `sweep data shard`, written by `sweep data synth`)
CXR_CSV = "Data_Entry_2017.csv"
CXR_IMAGES_DIR = "images"
CXR_TRAIN_VAL_LIST = "train_val_list.txt"
CXR_TEST_LIST = "test_list.txt"

# --- the dataset shard folder (written by `sweep data shard`, read by the job and the planner)
DATA_MANIFEST = "manifest.json"
SHARD_SUFFIX = ".tfrecord"

# --- what one training job writes into its output folder
METRICS = "metrics.json"
ERROR = "error.json"
MODEL_KERAS = "model.keras"
MODEL_TFLITE = "model.tflite"
HISTORY = "history.csv"
PREDICTIONS = "predictions.npz"
WRAPPER_TIMINGS = "wrapper.json"  # stage timings the shell wrapper records before python starts
JOB_OUTPUT_DIR = "out"  # inside the job's sandbox; remapped to the item folder on return
JOB_STDOUT = "job.out"  # the job's stdout and stderr, in its item folder (both backends)
JOB_STDERR = "job.err"
# 128 + SIGILL: what a shell reports for a child killed by SIGILL, and what the job wrapper exits with
# when the CPU lacks a flag TensorFlow needs; the submit description holds such jobs by it
SIGILL_EXIT_CODE = 132

# --- the job code shipped to every execute node (sweep/__init__.py + sweep/names.py + sweep/job/)
CODE_TARBALL = "sweep-code.tar.gz"

# --- the sweep directory (sweeps/NAME/)
SWEEP_MANIFEST = "sweep.json"
SUBMIT_DESCRIPTION = "submit.sub"
JOB_WRAPPER = "job-wrapper.sh"
ITEM_ROWS = "items.json"
EVENT_LOG = "events.log"
ITEMS_DIR = "items"
RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
REPORT_DIR = "report"
LOCK_FILE = ".lock"

# --- environment tarballs (envs/cache/)
ENV_CACHE_DIR = "cache"

# --- the embedded local backend, inside the sweep directory
LOCAL_EVENTS = "events.jsonl"  # the local backend's event log (HTCondor's is EVENT_LOG)
LOCAL_RUNS_DIR = "local"  # run-N.json (what a runner runs) and runner-N.log (what it said)
LOCAL_RUN_FILE = "run-{run_id}.json"
LOCAL_RUN_GLOB = "run-*.json"
LOCAL_RUNNER_LOG = "runner-{run_id}.log"
LOCAL_SANDBOXES_DIR = ".sandboxes"  # per-attempt job folders, removed when the attempt ends
UNPACKED_ENV_CACHE = "unpacked"  # beside the environment tarballs: unpacked once, shared by local jobs

# --- schema tags written into JSON files, so readers can refuse what they do not understand
DATA_MANIFEST_SCHEMA = "sweep.data/1"
DATA_IMAGE_ENCODING = "png"  # how shard records hold their pixels; the job refuses anything else
METRICS_SCHEMA = "sweep.metrics/1"
ERROR_SCHEMA = "sweep.error/1"

# --- environment variables the job wrapper reads
ENV_CACHE_VARIABLE = "SWEEP_ENV_CACHE"  # a writable folder: unpack the environment once per machine, share it
