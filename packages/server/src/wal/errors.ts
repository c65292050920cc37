import { SynchroError } from '../errors.js'

/** Base of every error the WAL consumer reports; `code` is stable. */
export class WalError extends SynchroError {}

/** The server is not set up for logical replication (wal_level, permissions, …). */
export class WalConfigurationError extends WalError {
  constructor(message: string, options?: ErrorOptions) {
    super('wal_configuration', message, options)
  }
}

/** The replication slot vanished (dropped by someone) while we were using it or just before START_REPLICATION. */
export class WalSlotMissingError extends WalError {
  constructor(
    readonly slotName: string,
    options?: ErrorOptions,
  ) {
    super('wal_slot_missing', `replication slot ${JSON.stringify(slotName)} does not exist`, options)
  }
}

/**
 * The slot had to be created again although a confirmed position was stored for it: changes committed while no slot
 * existed were never decoded and are not in the changelog.
 */
export class WalSlotRecreatedError extends WalError {
  constructor(
    readonly slotName: string,
    readonly previousLsn: string,
  ) {
    super(
      'wal_slot_recreated',
      `replication slot ${JSON.stringify(slotName)} was missing and has been recreated; changes after ${previousLsn} made while no slot existed were not captured`,
    )
  }
}

/** Another process holds the slot (it is active for another backend). Transient: retried with backoff. */
export class WalSlotBusyError extends WalError {
  constructor(
    readonly slotName: string,
    options?: ErrorOptions,
  ) {
    super('wal_slot_busy', `replication slot ${JSON.stringify(slotName)} is active in another session`, options)
  }
}

/** The replication connection failed or was closed by the server. Transient: reconnected with backoff. */
export class WalConnectionError extends WalError {
  constructor(message: string, options?: ErrorOptions) {
    super('wal_connection', message, options)
  }
}

/** A pgoutput message could not be decoded (protocol bug or an unsupported option). */
export class WalDecodeError extends WalError {
  constructor(message: string) {
    super('wal_decode', message)
  }
}

/** Writing a batch to the changelog failed; the batch is not acknowledged and will be received again. */
export class WalApplyError extends WalError {
  constructor(message: string, options?: ErrorOptions) {
    super('wal_apply', message, options)
  }
}

/** The advisory lock session that made this process the leader was lost. */
export class WalLeadershipLostError extends WalError {
  constructor(options?: ErrorOptions) {
    super('wal_leadership_lost', 'lost the WAL consumer leader lock (its session ended)', options)
  }
}
