-- What each username looks like (Unicode's confusable skeleton, case
-- folded): two names that read alike cannot both exist. Computed by identity
-- (SQL has no skeleton function); rows from before this migration get theirs
-- when identity starts. The code maps the index's name to ALREADY_EXISTS.
ALTER TABLE users ADD COLUMN username_skeleton text;
CREATE UNIQUE INDEX users_username_skeleton_key ON users (username_skeleton);
