// Errors the kit's commands raise on purpose: a code a program can test, and a message a person can act on.
export type BallastErrorCode =
  | 'KIT_NEWER' | 'KIT_MISMATCH' | 'SQL_FAILED' | 'NOT_INSTALLED' | 'AUDIT_LOG_NOT_EMPTY'
  | 'DEPENDENTS' | 'USAGE';

export class BallastError extends Error {
  readonly code: BallastErrorCode;
  readonly sqlstate: string | undefined;
  constructor(code: BallastErrorCode, message: string, sqlstate?: string) {
    super(message);
    this.name = 'BallastError';
    this.code = code;
    this.sqlstate = sqlstate;
  }
}
