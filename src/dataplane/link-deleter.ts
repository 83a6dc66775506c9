/**
 * Pod veth deletion for the node daemon. The kernel runs a netlink request
 * inside the sender's sendmsg(), and deleting a veth waits there ~20 ms for
 * the device's last references. On the daemon's own thread that wait stalls
 * everything, and the next DEL requests were seen arriving one per wait: 20
 * concurrent DELs took 594 ms against 145 ms for the Go plugins. So the
 * deletions go to one worker thread, and those that queue while it is busy
 * go next as one batch (link-batch.ts: one kernel wait for all of them).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { TernError, type ErrorCode } from '../lib/errors';
import { deleteLinks, type LinkDeletion } from './link-batch';
import { Rtnl } from './rtnl';
import type { LinkWorkerReply, LinkWorkerRequest } from './link-worker';

interface Job {
  name: string;
  resolve: (existed: boolean) => void;
  reject: (e: Error) => void;
}

export class LinkDeleter {
  private queue: Job[] = [];
  private busy = false;
  private worker?: Worker;
  private nextId = 1;
  private closing?: Promise<void>;
  /** The compiled worker; absent when running from the TypeScript sources (tests), where batches run on this thread. */
  private readonly script = path.join(__dirname, 'link-worker.js');

  /** Delete the link; false if it did not exist. */
  delete(name: string): Promise<boolean> {
    if (this.closing) return Promise.reject(new TernError('IO_FAILURE', `delete link ${name}: the daemon is stopping`));
    return new Promise((resolve, reject) => {
      this.queue.push({ name, resolve, reject });
      if (!this.busy) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length) {
        const jobs = this.queue.splice(0);
        let results: LinkDeletion[];
        try {
          results = await this.run(jobs.map((j) => j.name));
        } catch (e) {
          for (const j of jobs) j.reject(e as Error);
          continue;
        }
        jobs.forEach((j, i) => {
          const r = results[i];
          if ('error' in r) j.reject(new TernError(r.error.code as ErrorCode, r.error.message, { details: r.error.details }));
          else j.resolve(r.existed);
        });
      }
    } finally {
      this.busy = false;
    }
  }

  private run(names: string[]): Promise<LinkDeletion[]> {
    if (!fs.existsSync(this.script)) return this.inline(names);
    const w = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onMessage = (m: LinkWorkerReply) => {
        if (m.id !== id) return;
        w.off('message', onMessage);
        w.off('exit', onExit);
        resolve(m.results);
      };
      const onExit = () => {
        w.off('message', onMessage);
        reject(new TernError('IO_FAILURE', 'the link deletion worker ended'));
      };
      w.on('message', onMessage);
      w.once('exit', onExit);
      w.postMessage({ id, names } satisfies LinkWorkerRequest);
    });
  }

  private spawn(): Worker {
    const w = new Worker(this.script);
    w.on('error', () => undefined); // its 'exit' follows and fails what was pending
    w.once('exit', () => {
      if (this.worker === w) this.worker = undefined;
    });
    return w;
  }

  private async inline(names: string[]): Promise<LinkDeletion[]> {
    const rt = Rtnl.open();
    try {
      return await deleteLinks(rt, names);
    } finally {
      rt.close();
    }
  }

  /** Finish what is queued, then end the worker (its socket closed first). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.busy) await new Promise((r) => setTimeout(r, 5));
      const w = this.worker;
      if (!w) return;
      const exited = new Promise((r) => w.once('exit', r));
      w.postMessage({ id: 0 } satisfies LinkWorkerRequest);
      await exited;
    })();
    return this.closing;
  }
}
