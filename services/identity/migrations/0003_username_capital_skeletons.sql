-- What each username looks like written in capitals (the confusable skeleton
-- of its uppercase form): digits that pass for capitals meet the name they
-- imitate here ("AL1CE" and "alice"). Filled like username_skeleton: by
-- identity, at start for older rows. The code maps the index's name to
-- ALREADY_EXISTS.
ALTER TABLE users ADD COLUMN username_capital_skeleton text;
CREATE UNIQUE INDEX users_username_capital_skeleton_key ON users (username_capital_skeleton);
