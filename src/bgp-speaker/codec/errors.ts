import { TernError } from '../../lib/errors';

/**
 * A decode failure that ends the session: carries the NOTIFICATION code,
 * subcode and data the session sends (RFC 4271 §6). The session is the only
 * place that turns it into bytes on the wire.
 */
export class BgpProtocolError extends TernError {
  constructor(
    readonly notifyCode: number,
    readonly notifySubcode: number,
    message: string,
    readonly data: Buffer = Buffer.alloc(0),
  ) {
    super('DECODE_FAILURE', message, { details: `notification ${notifyCode}/${notifySubcode}` });
    this.name = 'BgpProtocolError';
  }
}

export function isBgpProtocolError(e: unknown): e is BgpProtocolError {
  return e instanceof BgpProtocolError;
}
