// Graphile Worker doing the work of the queuert capacity benchmark, on the same server.
// Run by benchmarks/graphile_runs.py: one figure per invocation, printed as one JSON line.
//
//   node bench.mjs <url> migrate
//   node bench.mjs <url> clear
//   node bench.mjs <url> single <n>
//   node bench.mjs <url> batched <n> <batch>
//   node bench.mjs <url> process <n> <concurrency> <localQueueSize> <completeJobBatchDelay>
//
// A local queue size or batch delay of -1 is Graphile Worker's default (off).
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const TASK = "bench";
const SETUP_BATCH = 1000;
// How often the drain of a process run is checked. A job counts once the statement
// that removes it from the jobs table has committed, which only the database can
// tell; the check is one cheap query from a connection of its own.
const DRAIN_POLL_MS = 5;

// Warnings and errors only, as queuert's runs log at WARNING.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`${level}: ${message}`);
});

const [url, scenario, ...rest] = process.argv.slice(2);
const numbers = rest.map((value) => Number.parseInt(value, 10));

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function withUtils(body) {
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  try {
    return await body(utils);
  } finally {
    await utils.release();
  }
}

async function addBatches(utils, n, batch) {
  for (let start = 0; start < n; start += batch) {
    const specs = [];
    for (let i = start; i < Math.min(n, start + batch); i++) {
      specs.push({ identifier: TASK, payload: { i } });
    }
    await utils.addJobs(specs);
  }
}

async function queued(utils) {
  return utils.withPgClient(async (client) => {
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM graphile_worker._private_jobs",
    );
    return rows[0].n;
  });
}

async function main() {
  if (scenario === "migrate") {
    await withUtils((utils) => utils.migrate());
    emit({ ok: true });
  } else if (scenario === "clear") {
    await withUtils((utils) =>
      utils.withPgClient((client) =>
        client.query("TRUNCATE graphile_worker._private_jobs CASCADE"),
      ),
    );
    emit({ ok: true });
  } else if (scenario === "single") {
    const [n] = numbers;
    await withUtils(async (utils) => {
      const began = performance.now();
      for (let i = 0; i < n; i++) await utils.addJob(TASK, { i });
      emit({ count: n, seconds: (performance.now() - began) / 1000 });
    });
  } else if (scenario === "batched") {
    const [n, batch] = numbers;
    await withUtils(async (utils) => {
      const began = performance.now();
      await addBatches(utils, n, batch);
      emit({ count: n, seconds: (performance.now() - began) / 1000 });
    });
  } else if (scenario === "process") {
    await processRun(...numbers);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
}

async function processRun(n, concurrency, localQueueSize, completeJobBatchDelay) {
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  try {
    await addBatches(utils, n, SETUP_BATCH);
    let firstStart = null;
    let handled = 0;
    const worker = {
      concurrentJobs: concurrency,
      completeJobBatchDelay,
    };
    if (localQueueSize > 0) worker.localQueue = { size: localQueueSize };
    const launched = performance.now();
    const runner = await run({
      connectionString: url,
      concurrency,
      noHandleSignals: true,
      logger,
      preset: { worker },
      taskList: {
        [TASK]: async () => {
          if (firstStart === null) firstStart = performance.now();
          handled += 1;
        },
      },
    });
    let left = n;
    while (left > 0) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      left = await queued(utils);
    }
    const drained = performance.now();
    await runner.stop();
    await runner.promise;
    emit({
      count: n,
      seconds: (drained - firstStart) / 1000,
      seconds_with_worker_start: (drained - launched) / 1000,
      handled,
    });
  } finally {
    await utils.release();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error?.stack ?? String(error));
    process.exit(1);
  },
);
