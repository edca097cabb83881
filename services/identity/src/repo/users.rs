use shop_platform::storage::db::constraint;
use sqlx::PgConnection;
use sqlx::postgres::PgQueryResult;

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
    sqlx::query_as!(
        User,
        "INSERT INTO users (username, username_skeleton, username_capital_skeleton, email, password_hash, is_admin)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, username, email, is_admin, created_at",
        user.username,
        user.username_skeleton,
        user.username_capital_skeleton,
        user.email,
        user.password_hash,
        user.is_admin,
    )
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
    let users = sqlx::query!(
        "SELECT id, username FROM users
         WHERE (username_skeleton IS NULL OR username_capital_skeleton IS NULL) AND id > $1 ORDER BY id LIMIT $2",
        after_id,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(users.into_iter().map(|user| (user.id, user.username)).collect())
}

/// Records a name's skeletons where missing; `false` when another user
/// already has one of them (two look-alike names from before it was kept:
/// both stay, and that skeleton stays unset).
pub async fn set_skeletons(conn: &mut PgConnection, id: i64, skeleton: &str, capital: &str) -> Result<bool, Error> {
    let plain_update = sqlx::query!(
        "UPDATE users SET username_skeleton = $2 WHERE id = $1 AND username_skeleton IS NULL",
        id,
        skeleton,
    )
    .execute(&mut *conn)
    .await;
    let plain_set = set_unless_taken(plain_update, "users_username_skeleton_key")?;
    let capital_update = sqlx::query!(
        "UPDATE users SET username_capital_skeleton = $2 WHERE id = $1 AND username_capital_skeleton IS NULL",
        id,
        capital,
    )
    .execute(&mut *conn)
    .await;
    let capital_set = set_unless_taken(capital_update, "users_username_capital_skeleton_key")?;
    Ok(plain_set && capital_set)
}

/// `false` when the update broke `key` (another user has that skeleton).
fn set_unless_taken(updated: Result<PgQueryResult, sqlx::Error>, key: &str) -> Result<bool, Error> {
    match updated {
        Ok(_) => Ok(true),
        Err(error) if constraint(&error) == Some(key) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

pub async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<User>, Error> {
    Ok(sqlx::query_as!(User, "SELECT id, username, email, is_admin, created_at FROM users WHERE id = $1", id)
        .fetch_optional(conn)
        .await?)
}

/// The user and password hash for a login, by username ignoring case.
pub async fn find_credentials(conn: &mut PgConnection, username: &str) -> Result<Option<(User, String)>, Error> {
    let found = sqlx::query!(
        "SELECT id, username, email, is_admin, created_at, password_hash FROM users WHERE lower(username) = lower($1)",
        username,
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|found| {
        let user = User {
            id: found.id,
            username: found.username,
            email: found.email,
            is_admin: found.is_admin,
            created_at: found.created_at,
        };
        (user, found.password_hash)
    }))
}
