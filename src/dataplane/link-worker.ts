/**
 * The LinkDeleter's worker thread: deletes batches of links on its own
 * netlink socket, so the kernel's wait blocks this thread, not the daemon's.
 * The socket is closed before the thread ends (the netlink addon crashes the
 * process when a worker ends with one open), hence the close message.
 */
import { parentPort } from 'node:worker_threads';
import { deleteLinks, type LinkDeletion } from './link-batch';
import { Rtnl } from './rtnl';

export interface LinkWorkerRequest {
  id: number;
  /** Links to delete; absent: close the socket and end. */
  names?: string[];
}
export interface LinkWorkerReply {
  id: number;
  results: LinkDeletion[];
}

const port = parentPort!;
const rt = Rtnl.open();
port.on('message', (m: LinkWorkerRequest) => {
  if (!m.names) {
    rt.close();
    port.close();
    return;
  }
  void deleteLinks(rt, m.names).then((results) => port.postMessage({ id: m.id, results } satisfies LinkWorkerReply));
});
