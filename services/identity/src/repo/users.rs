use shop_platform::storage::db::constraint;
use sqlx::PgConnection;

use crate::error::Error;
use crate::model::User;

pub struct NewUserRow<'a> {
    pub username: &'a str,
    pub username_skeleton: &'a str,
    pub username_capital_skeleton: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
}

pub async fn insert(conn: &mut PgConnection, user: NewUserRow<'_>) -> Result<User, Error> {
    sqlx::query_as(
        "INSERT INTO users (username, username_skeleton, username_capital_skeleton, email, password_hash, is_admin)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, username, email, is_admin, created_at",
    )
    .bind(user.username)
    .bind(user.username_skeleton)
    .bind(user.username_capital_skeleton)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.is_admin)
    .fetch_one(conn)
    .await
    .map_err(|error| match constraint(&error) {
        Some("users_username_key") => Error::AlreadyExists("username"),
        Some("users_username_skeleton_key" | "users_username_capital_skeleton_key") => {
            Error::AlreadyExists("a username that looks the same")
        }
        Some("users_email_key") => Error::AlreadyExists("email"),
        _ => error.into(),
    })
}

/// Up to `limit` users after `after_id` whose name lacks a skeleton
/// (created before that skeleton was kept): (id, username).
pub async fn without_skeleton(conn: &mut PgConnection, after_id: i64, limit: i64) -> Result<Vec<(i64, String)>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, username FROM users
         WHERE (username_skeleton IS NULL OR username_capital_skeleton IS NULL) AND id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Records a name's skeletons where missing; `false` when another user
/// already has one of them (two look-alike names from before it was kept:
/// both stay, and that skeleton stays unset).
pub async fn set_skeletons(conn: &mut PgConnection, id: i64, skeleton: &str, capital: &str) -> Result<bool, Error> {
    let mut both = true;
    for (statement, value, key) in [
        (
            "UPDATE users SET username_skeleton = $2 WHERE id = $1 AND username_skeleton IS NULL",
            skeleton,
            "users_username_skeleton_key",
        ),
        (
            "UPDATE users SET username_capital_skeleton = $2 WHERE id = $1 AND username_capital_skeleton IS NULL",
            capital,
            "users_username_capital_skeleton_key",
        ),
    ] {
        match sqlx::query(statement).bind(id).bind(value).execute(&mut *conn).await {
            Ok(_) => {}
            Err(error) if constraint(&error) == Some(key) => both = false,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(both)
}

pub async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<User>, Error> {
    Ok(sqlx::query_as("SELECT id, username, email, is_admin, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// The user and password hash for a login, by username ignoring case.
pub async fn find_credentials(conn: &mut PgConnection, username: &str) -> Result<Option<(User, String)>, Error> {
    #[derive(sqlx::FromRow)]
    struct Credentials {
        #[sqlx(flatten)]
        user: User,
        password_hash: String,
    }
    let found: Option<Credentials> = sqlx::query_as(
        "SELECT id, username, email, is_admin, created_at, password_hash FROM users WHERE lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|found| (found.user, found.password_hash)))
}
