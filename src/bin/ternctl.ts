/** Entry of dist/bin/ternctl: the operator CLI (commands in src/cli/). */
export { run } from '../cli/main';
