-- Participant directory: providers, the FX provider, their proxies, caps and cover,
-- and the settlement system of each currency.

CREATE TABLE settlement_systems (
    currency    CHAR(3) PRIMARY KEY CHECK (currency ~ '^[A-Z]{3}$'),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL
);

CREATE TABLE participants (
    id                  TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 140),
    scheme              TEXT NOT NULL CHECK (scheme IN ('hk-fps', 'cn-ibps', 'mo-fps')),
    clearing_system     TEXT NOT NULL,
    clearing_code       TEXT NOT NULL,
    role                TEXT NOT NULL DEFAULT 'provider' CHECK (role IN ('provider', 'fx_provider')),
    status              TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    endpoint_url        TEXT,
    public_key_ed25519  TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (clearing_system, clearing_code)
);

CREATE TABLE proxies (
    type            TEXT NOT NULL CHECK (type IN ('MOBN', 'EMAL', 'SHID')),
    value           TEXT NOT NULL,
    participant_id  TEXT NOT NULL REFERENCES participants (id),
    account_number  TEXT NOT NULL,
    PRIMARY KEY (type, value)
);

CREATE TABLE participant_limits (
    participant_id    TEXT NOT NULL REFERENCES participants (id),
    currency          CHAR(3) NOT NULL REFERENCES settlement_systems (currency),
    net_debit_cap     BIGINT NOT NULL CHECK (net_debit_cap >= 0),
    liquidity_cover   BIGINT NOT NULL CHECK (liquidity_cover >= 0),
    liquidity_saving  BOOLEAN NOT NULL DEFAULT false,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, currency)
);
