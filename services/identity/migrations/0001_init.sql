-- Identity's schema (search_path is pinned to it): users, refresh-token
-- families and the keys access tokens are signed with.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text        NOT NULL,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    is_admin      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Unique ignoring case; the code maps these names to ALREADY_EXISTS.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- One family per login; every rotated refresh token joins its family, and
-- revoking the family ends them all.
CREATE TABLE refresh_families (
    id         uuid PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id);

-- Only the SHA-256 of a refresh token is stored: a leaked table holds no token.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family_id  uuid        NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    -- PKCS#8 DER of the Ed25519 private key; never leaves this schema.
    private_key_der bytea       NOT NULL,
    -- base64url public key (JWK `x`), what the gateway fetches.
    public_key_x    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
