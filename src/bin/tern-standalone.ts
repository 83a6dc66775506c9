/** Entry of dist/bin/tern-standalone: the CNI plugin as a process (the native shim execs it when no daemon answers). */
import { runCniProcess } from '../lib/errors-cni';
import { handle } from '../cni-plugin/handle';

export function run(): void {
  runCniProcess((env, stdin) => handle(env, stdin));
}
